/** Every workflow type the worker registers, by its catalog name. */
export { preflight } from './preflight';
export { dbConnectionExhaustion } from './db-connection-exhaustion';
export { databaseOptimization } from './database-optimization';
export { certificateExpiry } from './certificate-expiry';
export { redisMemoryPressure } from './redis-memory-pressure';
export { diskPressure } from './disk-pressure';
export { podCrashLoop } from './pod-crash-loop';
export { rollbackDeployment } from './rollback-deployment';
export { emergencyScale } from './emergency-scale';
export { trafficControl } from './traffic-control';
export { postIncidentReview } from './post-incident-review';
/** Per-target lock the runbooks queue on before changing a target. */
export { targetLock } from './target-lock';
export { dailyHealthCheck } from './daily-health-check';
export { monthlyReview } from './monthly-review';
export { weeklyReview } from './weekly-review';
export { rotateDatabasePassword } from './rotate-database-password';
export { provisionReadonlyAccess } from './provision-readonly-access';
export { applyNetworkPolicy } from './apply-network-policy';
