import { renderChecklistMarkdown, type ChecklistReport } from '../../activities/checklist-markdown';
import { renderIncidentMarkdown, type IncidentReport } from '../../activities/report-markdown';
import { loadConfig, ConfigError } from '../../config/load';
import type { RunbookStatus } from '../../common/runbook';
import { languages, texts, textsFor } from '../../common/texts';
import { currentDetails } from '../../workflows/kernel/current-details';

const hasHan = /\p{Script=Han}/u;

describe('the texts catalog', () => {
  test.each(Object.keys(texts))('%s is given in every language, with the same shape', (key) => {
    const entry = texts[key as keyof typeof texts] as Record<string, unknown>;
    expect(Object.keys(entry).sort()).toEqual([...languages].sort());
    const [en, ...others] = languages.map((language) => entry[language]);
    for (const other of others) {
      expect(typeof other).toBe(typeof en);
      if (typeof en === 'function') expect((other as (...args: unknown[]) => string).length).toBe(en.length);
      else if (typeof en === 'string') expect((other as string).length).toBeGreaterThan(0);
      else expect(Object.keys(other as object).sort()).toEqual(Object.keys(en as object).sort());
    }
  });

  test("the manual's own terms name the runbooks in Chinese; English names them by workflow type", () => {
    const zh = textsFor('zh-CN');
    expect(zh.runbook('dailyHealthCheck')).toBe('每日检查清单（dailyHealthCheck）');
    expect(zh.runbook('dbConnectionExhaustion')).toBe('场景2：数据库连接池耗尽（dbConnectionExhaustion）');
    expect(zh.runbook('kernelTestRunbook')).toBe('kernelTestRunbook');
    expect(textsFor(undefined).runbook('dailyHealthCheck')).toBe('dailyHealthCheck');
    expect(zh.tier('l1')).toBe('一线运维');
  });

  test('RUNBOOK_LANGUAGE is English by default, zh-CN when set, and anything else is refused with the choices', () => {
    const minimal = { TEMPORAL_ADDRESS: '127.0.0.1:7233' };
    expect(loadConfig({ env: minimal }).language).toBe('en');
    expect(loadConfig({ env: { ...minimal, RUNBOOK_LANGUAGE: 'zh-CN' } }).language).toBe('zh-CN');
    let problems: string[] = [];
    try {
      loadConfig({ env: { ...minimal, RUNBOOK_LANGUAGE: 'fr' } });
    } catch (err) {
      if (err instanceof ConfigError) problems = err.problems;
    }
    expect(problems.join('\n')).toMatch(/RUNBOOK_LANGUAGE.*expected one of en, zh-CN/);
  });
});

const timeline: IncidentReport['timeline'] = [
  { at: '2026-12-06T04:00:00.000Z', event: 'started', by: 'erin', detail: 'execute mode' },
  { at: '2026-12-06T04:00:01.000Z', event: 'decided', stepId: 'restart', by: 'bob', role: 'l2', channel: 'update', verified: false, detail: 'approved' },
  { at: '2026-12-06T04:00:02.000Z', event: 'finished', detail: 'cancelled: 1 step' },
];

const incident = (language?: IncidentReport['language']): IncidentReport => ({
  runbook: 'dbConnectionExhaustion',
  workflowId: 'dbConnectionExhaustion/short-drama-prod/postgres',
  runId: 'run-1',
  target: 'short-drama-prod/postgres',
  severity: 'P1',
  mode: 'execute',
  startedBy: 'erin',
  outcome: 'cancelled',
  ...(language ? { language } : {}),
  summary: 'connections 95/100 before',
  plan: [{ stepId: 'restart', title: 'Restart', planHash: 'a'.repeat(64), allowedRoles: ['l1'], change: { summary: 'restart postgres', needed: true } }],
  timeline,
  evidence: [{ key: 'runbooks/evidence/x.log', size: 10, sha256: 'b'.repeat(64), what: 'logs' }],
  impact: 'impact',
  rootCause: 'root cause',
  solution: 'solution',
  prevention: 'prevention',
});

describe('rendering in the run language', () => {
  test("the incident report in Chinese has the manual's five parts (事后分析)", () => {
    const markdown = renderIncidentMarkdown(incident('zh-CN'));
    expect(markdown).toContain('# 事故报告：场景2：数据库连接池耗尽（dbConnectionExhaustion）：short-drama-prod/postgres');
    expect(markdown).toContain('- 结果：**已取消** — connections 95/100 before');
    for (const part of ['## 事件时间线', '## 影响范围', '## 根本原因', '## 解决方案', '## 预防措施', '## 证据']) expect(markdown).toContain(part);
    expect(markdown).toContain('| 2026-12-06T04:00:01.000Z | 决定 | restart | bob, l2, update, 未验证 | approved |');
    expect(markdown).not.toMatch(/## (Timeline|Impact|Root cause)/);
  });

  test('the incident report stays English by default (and for runs that name no language)', () => {
    const markdown = renderIncidentMarkdown(incident());
    expect(markdown).toContain('# Incident report: dbConnectionExhaustion on short-drama-prod/postgres');
    expect(markdown).toContain('- Outcome: **cancelled** — connections 95/100 before');
    expect(markdown).toContain('| time | event | step | by | detail |');
    expect(markdown).not.toMatch(hasHan);
  });

  const checklist = (language?: ChecklistReport['language']): ChecklistReport => ({
    runbook: 'dailyHealthCheck',
    workflowId: 'dailyHealthCheck/scheduled',
    runId: 'run-2',
    target: 'short-drama-prod',
    startedBy: 'schedule:daily',
    scheduled: true,
    startedAt: '2026-12-06T08:00:00.000Z',
    finishedAt: '2026-12-06T08:01:00.000Z',
    overall: 'WARN',
    counts: { FAIL: 0, WARN: 1, PASS: 1 },
    checks: [
      { id: 'pods', section: '系统健康检查 / Pods', title: 'Pods in short-drama-prod', status: 'PASS', value: '3/3 ready', threshold: '', detail: '' },
      { id: 'logs', section: '日志检查', title: 'ERROR lines', status: 'WARN', value: '未测量', threshold: '', detail: '检查无法运行：timeout' },
    ],
    changes: [],
    ...(language ? { language } : {}),
  });

  test('checklist rows in Chinese: 每日检查清单, status words and headers', () => {
    const markdown = renderChecklistMarkdown(checklist('zh-CN'));
    expect(markdown.split('\n').slice(0, 3)).toEqual(['# 每日检查清单（dailyHealthCheck）：警告', '', '- 0 项失败，1 项警告，1 项通过']);
    expect(markdown).toContain('## 需要关注');
    expect(markdown).toContain('| 状态 | 检查项 | 值 | 阈值 | 详情 |');
    expect(markdown).toContain('| ✅ 通过 | Pods in short-drama-prod | 3/3 ready |  |  |');
    expect(markdown).toContain('（定时任务）');
  });

  test('checklist rows stay English by default', () => {
    const markdown = renderChecklistMarkdown(checklist());
    expect(markdown.split('\n').slice(0, 3)).toEqual(['# dailyHealthCheck: WARN', '', '- 0 FAIL, 1 WARN, 1 PASS']);
    expect(markdown).toContain('| ✅ PASS | Pods in short-drama-prod | 3/3 ready |  |  |');
  });

  const waiting: RunbookStatus = {
    runbook: 'dbConnectionExhaustion',
    mode: 'execute',
    severity: 'P1',
    target: 'short-drama-prod/postgres',
    startedBy: 'erin',
    state: 'waiting-for-approval',
    stepsDone: 1,
    stepsDeclared: 3,
    pending: {
      stepId: 'restart',
      title: 'Restart',
      planHash: 'c'.repeat(64),
      change: { summary: 'restart postgres', details: { replicas: 1 }, needed: true },
      allowedRoles: ['l1', 'l2'],
      approvers: [],
      tier: 'l1',
      until: '2026-12-06T05:00:00.000Z',
      required: 1,
      verification: 'unverified',
    },
    plan: [],
    timeline,
  };

  test('Current Details in Chinese: state, plan, who may decide, and the exact command', () => {
    const details = currentDetails('dbConnectionExhaustion/short-drama-prod/postgres', waiting, textsFor('zh-CN'));
    expect(details).toContain('## 场景2：数据库连接池耗尽（dbConnectionExhaustion）：short-drama-prod/postgres');
    expect(details).toContain('**等待审批**："restart"；已完成 1/3 步。模式 execute，级别 P1，发起人 erin。');
    expect(details).toContain('审批层级 一线运维，截止 2026-12-06T05:00:00.000Z；可决定：一线运维, 高级运维；已批准 0/1；**未验证**');
    expect(details).toContain(`runbook approve dbConnectionExhaustion/short-drama-prod/postgres --step restart --plan ${'c'.repeat(64)} --reason "<why>" --as <you>`);
    expect(details).toContain('### 最近事件');
  });

  test('Current Details stay English by default', () => {
    const details = currentDetails('dbConnectionExhaustion/short-drama-prod/postgres', waiting);
    expect(details).toContain('**waiting for approval** of "restart"; step 1 of 3 done. Mode execute, severity P1, started by erin.');
    expect(details).toContain('Tier l1 until 2026-12-06T05:00:00.000Z; may decide: l1, l2; approvals 0 of 1; **UNVERIFIED**: no approver keys configured.');
    expect(details).not.toMatch(hasHan);
  });
});
