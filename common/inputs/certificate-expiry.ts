import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

/** 场景5 证书过期: the manual's names are the defaults. */
export const certificateExpiryInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The cert-manager Certificate, deleted so cert-manager issues it again. */
    certificate: kubeName.default('app-tls-cert'),
    /** The Ingress whose tls/annotations make cert-manager's ingress-shim (re)create the Certificate. */
    ingress: kubeName.default('app-ingress'),
    /** A Ready certificate with at most this many days left is renewed too. */
    renewWhenDaysLeft: z.number().int().min(0, { message: 'at least 0 days' }).max(90, { message: 'at most 90 days' }).default(7),
    /** How long to wait for the re-issued Certificate to become Ready (manual: 300 s). */
    readyTimeoutSeconds: z.number().int().min(5, { message: 'at least 5 seconds' }).max(3600).default(300),
    /** Where cert-manager runs, when its logs should be read too (not present in the sandbox). */
    certManager: z
      .object({ namespace: kubeName, deployment: kubeName.default('cert-manager') })
      .strict()
      .optional(),
  })
  .strict();

export type CertificateExpiryInput = z.input<typeof certificateExpiryInput>;
