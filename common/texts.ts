import type { ApproverRole, RunbookOutcome, TimelineEvent } from './runbook';
import type { CheckStatus } from './checklist';

/**
 * Every sentence people read in reports, notifications, the UI's Current Details and checklist
 * rows, in each language, in this one place. `RUNBOOK_LANGUAGE` (config `language`) picks one;
 * the client fixes it in the run's input at start, so a run renders in one language for good
 * (replays too). Chinese uses the manual's own terms (ops-manual.zh.md).
 */
export const languages = ['en', 'zh-CN'] as const;
export type Language = (typeof languages)[number];
export const defaultLanguage: Language = 'en';

/** One text in every language, with the same shape in each (tsc refuses a missing language). */
type Entry<T> = Record<Language, T>;
const entry = <T>(text: Entry<T>): Entry<T> => text;

/** The manual's names of the runbooks (目录); English names them by workflow type. */
const manualNames: Record<string, string> = {
  preflight: '预检',
  dailyHealthCheck: '每日检查清单',
  weeklyReview: '每周检查清单',
  monthlyReview: '每月检查清单',
  podCrashLoop: '场景1：应用Pod崩溃',
  databaseOptimization: '数据库优化',
  dbConnectionExhaustion: '场景2：数据库连接池耗尽',
  redisMemoryPressure: '场景3：Redis内存不足',
  diskPressure: '场景4：磁盘空间不足',
  certificateExpiry: '场景5：证书过期',
  rollbackDeployment: '快速回滚',
  emergencyScale: '紧急扩容',
  trafficControl: '流量控制',
  rotateDatabasePassword: '定期轮换密钥',
  provisionReadonlyAccess: 'RBAC配置',
  applyNetworkPolicy: '网络策略',
  postIncidentReview: '事后分析',
};

const outcomes: Record<RunbookOutcome, Entry<string>> = {
  planned: { en: 'planned', 'zh-CN': '已计划' },
  completed: { en: 'completed', 'zh-CN': '已完成' },
  'nothing-to-do': { en: 'nothing-to-do', 'zh-CN': '无需操作' },
  'partially-applied': { en: 'partially-applied', 'zh-CN': '部分执行' },
  rejected: { en: 'rejected', 'zh-CN': '已拒绝' },
  expired: { en: 'expired', 'zh-CN': '审批超时' },
  cancelled: { en: 'cancelled', 'zh-CN': '已取消' },
  failed: { en: 'failed', 'zh-CN': '失败' },
};

const events: Record<TimelineEvent, Entry<string>> = {
  started: { en: 'started', 'zh-CN': '开始' },
  read: { en: 'read', 'zh-CN': '读取' },
  planned: { en: 'planned', 'zh-CN': '计划' },
  requested: { en: 'requested', 'zh-CN': '请求审批' },
  escalated: { en: 'escalated', 'zh-CN': '升级' },
  decided: { en: 'decided', 'zh-CN': '决定' },
  refused: { en: 'refused', 'zh-CN': '拒收' },
  replanned: { en: 'replanned', 'zh-CN': '重新计划' },
  applied: { en: 'applied', 'zh-CN': '已执行' },
  verified: { en: 'verified', 'zh-CN': '已验证' },
  skipped: { en: 'skipped', 'zh-CN': '跳过' },
  failed: { en: 'failed', 'zh-CN': '失败' },
  cancelled: { en: 'cancelled', 'zh-CN': '取消' },
  'alert-firing': { en: 'alert-firing', 'zh-CN': '告警触发' },
  'alert-resolved': { en: 'alert-resolved', 'zh-CN': '告警恢复' },
  'not-recorded': { en: 'not-recorded', 'zh-CN': '未逐条记录' },
  locked: { en: 'locked', 'zh-CN': '加锁' },
  unlocked: { en: 'unlocked', 'zh-CN': '解锁' },
  changed: { en: 'changed (audit log)', 'zh-CN': '变更（审计日志）' },
  finished: { en: 'finished', 'zh-CN': '结束' },
};

/** The escalation path of the manual (应急响应 / 升级路径). */
const tiers: Record<ApproverRole, Entry<string>> = {
  l1: { en: 'l1', 'zh-CN': '一线运维' },
  l2: { en: 'l2', 'zh-CN': '高级运维' },
  manager: { en: 'manager', 'zh-CN': '运维经理' },
  cto: { en: 'cto', 'zh-CN': 'CTO' },
};

const checkStatuses: Record<CheckStatus, Entry<string>> = {
  FAIL: { en: '❌ FAIL', 'zh-CN': '❌ 失败' },
  WARN: { en: '⚠️ WARN', 'zh-CN': '⚠️ 警告' },
  PASS: { en: '✅ PASS', 'zh-CN': '✅ 通过' },
};

const overallStatuses: Record<CheckStatus, string> = { FAIL: '失败', WARN: '警告', PASS: '通过' };

export const texts = {
  runbook: entry({ en: (name: string) => name, 'zh-CN': (name: string) => (manualNames[name] ? `${manualNames[name]}（${name}）` : name) }),
  outcome: entry({ en: (o: RunbookOutcome) => outcomes[o].en, 'zh-CN': (o: RunbookOutcome) => outcomes[o]['zh-CN'] }),
  event: entry({ en: (e: TimelineEvent) => events[e].en, 'zh-CN': (e: TimelineEvent) => events[e]['zh-CN'] }),
  tier: entry({ en: (t: ApproverRole) => tiers[t].en, 'zh-CN': (t: ApproverRole) => tiers[t]['zh-CN'] }),
  checkStatus: entry({ en: (s: CheckStatus) => checkStatuses[s].en, 'zh-CN': (s: CheckStatus) => checkStatuses[s]['zh-CN'] }),

  // The UI's Current Details (workflows/kernel/current-details.ts).
  detailsHeading: entry({ en: (runbook: string, target: string) => `## ${runbook} on ${target}`, 'zh-CN': (runbook: string, target: string) => `## ${runbook}：${target}` }),
  stateFinished: entry({ en: (outcome: string) => `**finished: ${outcome}**`, 'zh-CN': (outcome: string) => `**已结束：${outcome}**` }),
  stateWaitingForApproval: entry({ en: (step: string) => `**waiting for approval** of "${step}"`, 'zh-CN': (step: string) => `**等待审批**："${step}"` }),
  stateWaitingForLock: entry({ en: (target: string) => `**waiting for the lock** on ${target}`, 'zh-CN': (target: string) => `**等待锁**：${target}` }),
  stateRunning: entry({ en: (step?: string) => `**running**${step ? ` "${step}"` : ''}`, 'zh-CN': (step?: string) => `**运行中**${step ? `："${step}"` : ''}` }),
  runLine: entry({
    en: (r: { where: string; done: number; declared: number; mode: string; severity: string; startedBy: string }) =>
      `${r.where}; step ${r.done} of ${r.declared} done. Mode ${r.mode}, severity ${r.severity}, started by ${r.startedBy}.`,
    'zh-CN': (r: { where: string; done: number; declared: number; mode: string; severity: string; startedBy: string }) =>
      `${r.where}；已完成 ${r.done}/${r.declared} 步。模式 ${r.mode}，级别 ${r.severity}，发起人 ${r.startedBy}。`,
  }),
  detailsReport: entry({
    en: (markdownKey: string, jsonKey: string) => `**Incident report:** \`${markdownKey}\` (JSON: \`${jsonKey}\`)`,
    'zh-CN': (markdownKey: string, jsonKey: string) => `**事故报告：** \`${markdownKey}\`（JSON：\`${jsonKey}\`）`,
  }),
  lastEvents: entry({ en: '### Last events', 'zh-CN': '### 最近事件' }),
  earlierEvents: entry({
    en: (count: number, command: string) => `- … ${count} earlier: \`${command}\``,
    'zh-CN': (count: number, command: string) => `- … 更早的 ${count} 条：\`${command}\``,
  }),
  waitingForDecision: entry({
    en: (step: string, title: string) => `### Waiting for a decision: "${step}" (${title})`,
    'zh-CN': (step: string, title: string) => `### 等待决定："${step}"（${title}）`,
  }),
  changeLabel: entry({ en: '**Change:**', 'zh-CN': '**变更：**' }),
  beforeAfterLabel: entry({ en: '**Before → after:**', 'zh-CN': '**变更前 → 变更后：**' }),
  moreLines: entry({ en: (count: number) => `… ${count} more lines`, 'zh-CN': (count: number) => `… 另有 ${count} 行` }),
  planLabel: entry({ en: '**Plan:**', 'zh-CN': '**计划：**' }),
  approvalLine: entry({
    en: (a: { tier: string; until: string; deciders: string; given: number; required: number; unverified: boolean }) =>
      `Tier ${a.tier} until ${a.until}; may decide: ${a.deciders}; approvals ${a.given} of ${a.required}${a.unverified ? '; **UNVERIFIED**: no approver keys configured' : ''}.`,
    'zh-CN': (a: { tier: string; until: string; deciders: string; given: number; required: number; unverified: boolean }) =>
      `审批层级 ${a.tier}，截止 ${a.until}；可决定：${a.deciders}；已批准 ${a.given}/${a.required}${a.unverified ? '；**未验证**：未配置审批人公钥' : ''}。`,
  }),
  decideFromShell: entry({ en: '**Decide from a shell:**', 'zh-CN': '**在命令行决定：**' }),
  decideHere: entry({
    en: '**Decide here:** Send an Update → `approve` (or `reject`) with this input:',
    'zh-CN': '**在此决定：** 发送 Update → `approve`（或 `reject`），输入如下：',
  }),
  signedInputHint: entry({ en: 'the JSON printed by:', 'zh-CN': '以下命令输出的 JSON：' }),

  // The incident report (事后分析, activities/report-markdown.ts): the manual's five parts.
  reportTitle: entry({ en: (runbook: string, target: string) => `# Incident report: ${runbook} on ${target}`, 'zh-CN': (runbook: string, target: string) => `# 事故报告：${runbook}：${target}` }),
  reportOutcome: entry({ en: (outcome: string, summary: string) => `- Outcome: **${outcome}** — ${summary}`, 'zh-CN': (outcome: string, summary: string) => `- 结果：**${outcome}** — ${summary}` }),
  reportRunFields: entry({
    en: (severity: string, mode: string, startedBy: string) => `- Severity: ${severity}; mode: ${mode}; started by: ${startedBy}`,
    'zh-CN': (severity: string, mode: string, startedBy: string) => `- 级别：${severity}；模式：${mode}；发起人：${startedBy}`,
  }),
  reportRun: entry({ en: (workflowId: string, runId: string) => `- Run: ${workflowId} (${runId})`, 'zh-CN': (workflowId: string, runId: string) => `- 运行：${workflowId}（${runId}）` }),
  timelineHeading: entry({ en: '## Timeline', 'zh-CN': '## 事件时间线' }),
  timelineHeader: entry({ en: '| time | event | step | by | detail |', 'zh-CN': '| 时间 | 事件 | 步骤 | 执行人 | 详情 |' }),
  impactHeading: entry({ en: '## Impact', 'zh-CN': '## 影响范围' }),
  rootCauseHeading: entry({ en: '## Root cause', 'zh-CN': '## 根本原因' }),
  solutionHeading: entry({ en: '## Solution', 'zh-CN': '## 解决方案' }),
  plannedChangesHeading: entry({ en: '### Planned changes', 'zh-CN': '### 计划的变更' }),
  plannedChange: entry({
    en: (title: string, summary: string, hash: string) => `- ${title}: ${summary} (plan ${hash})`,
    'zh-CN': (title: string, summary: string, hash: string) => `- ${title}：${summary}（计划 ${hash}）`,
  }),
  preventionHeading: entry({ en: '## Prevention', 'zh-CN': '## 预防措施' }),
  evidenceHeading: entry({ en: '## Evidence', 'zh-CN': '## 证据' }),
  evidenceLine: entry({
    en: (what: string, key: string, size: number, sha: string) => `- ${what}: \`${key}\` (${size} bytes, sha256 ${sha})`,
    'zh-CN': (what: string, key: string, size: number, sha: string) => `- ${what}：\`${key}\`（${size} 字节，sha256 ${sha}）`,
  }),
  signedBy: entry({ en: (fingerprint: string) => `signed ${fingerprint}`.trim(), 'zh-CN': (fingerprint: string) => `已签名 ${fingerprint}`.trim() }),
  unverified: entry({ en: 'unverified', 'zh-CN': '未验证' }),
  nothingChanged: entry({ en: 'Nothing was changed.', 'zh-CN': '未做任何变更。' }),

  // Notifications: approval requests (kernel) and checklist summaries; field labels.
  approvalNeeded: entry({
    en: (runbook: string, title: string, tier: string) => `${runbook}: approval needed for "${title}" (${tier})`,
    'zh-CN': (runbook: string, title: string, tier: string) => `${runbook}：需要审批"${title}"（${tier}）`,
  }),
  fieldLabels: entry({
    en: { run: 'run', target: 'target', step: 'step', plan: 'plan', decideBy: 'decide by', approvals: 'approvals', approve: 'approve', report: 'report' },
    'zh-CN': { run: '运行', target: '目标', step: '步骤', plan: '计划', decideBy: '截止时间', approvals: '审批', approve: '批准命令', report: '报告' },
  }),
  approvalCount: entry({
    en: (given: number, required: number, signed: boolean) => `${given} of ${required}${signed ? ', signed' : ', UNVERIFIED: no approver keys configured'}`,
    'zh-CN': (given: number, required: number, signed: boolean) => `${given}/${required}${signed ? '，已签名' : '，未验证：未配置审批人公钥'}`,
  }),

  // Checklists (workflows/kernel/checklist.ts, activities/checklist-markdown.ts).
  overallStatus: entry({ en: (s: CheckStatus) => s, 'zh-CN': (s: CheckStatus) => overallStatuses[s] }),
  checklistCounts: entry({
    en: (c: Record<CheckStatus, number>) => `${c.FAIL} FAIL, ${c.WARN} WARN, ${c.PASS} PASS`,
    'zh-CN': (c: Record<CheckStatus, number>) => `${c.FAIL} 项失败，${c.WARN} 项警告，${c.PASS} 项通过`,
  }),
  checklistSummary: entry({ en: (overall: string, counts: string) => `${overall}: ${counts}`, 'zh-CN': (overall: string, counts: string) => `${overall}：${counts}` }),
  checklistAllPass: entry({ en: (count: number) => `all ${count} checks PASS`, 'zh-CN': (count: number) => `全部 ${count} 项检查通过` }),
  checklistTitle: entry({ en: (runbook: string, overall: string) => `# ${runbook}: ${overall}`, 'zh-CN': (runbook: string, overall: string) => `# ${runbook}：${overall}` }),
  checklistTarget: entry({
    en: (target: string, startedBy: string, scheduled: boolean) => `- Target: ${target}; started by ${startedBy}${scheduled ? ' (schedule)' : ''}`,
    'zh-CN': (target: string, startedBy: string, scheduled: boolean) => `- 目标：${target}；发起人 ${startedBy}${scheduled ? '（定时任务）' : ''}`,
  }),
  checklistRun: entry({
    en: (workflowId: string, runId: string, from: string, to: string) => `- Run: ${workflowId} (${runId}), ${from} – ${to}`,
    'zh-CN': (workflowId: string, runId: string, from: string, to: string) => `- 运行：${workflowId}（${runId}），${from} – ${to}`,
  }),
  needsAttention: entry({ en: '## Needs attention', 'zh-CN': '## 需要关注' }),
  changesHeading: entry({ en: '## Changes', 'zh-CN': '## 变更' }),
  checklistHeader: entry({ en: '| status | check | value | threshold | detail |', 'zh-CN': '| 状态 | 检查项 | 值 | 阈值 | 详情 |' }),
  notMeasured: entry({ en: 'not measured', 'zh-CN': '未测量' }),
  checkCouldNotRun: entry({ en: (error: string) => `the check could not run: ${error}`, 'zh-CN': (error: string) => `检查无法运行：${error}` }),
  reportRowTitle: entry({ en: 'Report saved to S3', 'zh-CN': '报告已保存到S3' }),
  reportRowSection: entry({ en: 'Report', 'zh-CN': '报告' }),
  notSaved: entry({ en: 'not saved', 'zh-CN': '未保存' }),
  reportNotWritten: entry({ en: (error: string) => `the report could not be written: ${error}`, 'zh-CN': (error: string) => `报告无法写入：${error}` }),
};

export type Texts = { [K in keyof typeof texts]: (typeof texts)[K]['en'] };

/** The texts of one language (English for a run that names none: runs begun before languages). */
export function textsFor(language: Language | undefined): Texts {
  const chosen = language ?? defaultLanguage;
  return Object.fromEntries(Object.entries(texts).map(([key, text]) => [key, text[chosen]])) as Texts;
}
