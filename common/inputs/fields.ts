import { z } from 'zod';
import { memoryBytes } from '../quantity';

/** Input fields several runbooks share, validated the same way everywhere. */

export const kubeName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { message: 'expected a Kubernetes name (lowercase letters, digits, -)' });

/** A quantity of bytes (512Mi, 20Gi) of at least 1Mi. */
const atLeast1Mi = (message: string) => z.string().refine((s) => (memoryBytes(s) ?? 0) >= 2 ** 20, { message });

export const memoryLimitQuantity = atLeast1Mi('expected a memory quantity of at least 1Mi, such as 512Mi or 4Gi');
export const storageQuantity = atLeast1Mi('expected a storage quantity of at least 1Mi, such as 20Gi');

/** A directory relative to the container's work dir: no absolute path, no '..', no shell characters. */
export const relativeDir = z
  .string()
  .min(1)
  .max(512)
  .refine((p) => !p.startsWith('/'), { message: 'expected a path relative to the work dir, not an absolute path' })
  .refine((p) => !p.split('/').includes('..'), { message: "must not contain '..'" })
  .refine((p) => /^(?!-)[A-Za-z0-9._/-]+$/.test(p), { message: 'only letters, digits, ".", "_", "-" and "/" (not starting with "-")' })
  .refine((p) => p.split('/').some((s) => s !== '' && s !== '.'), { message: 'must name a directory below the work dir, not the work dir itself' });

/** An S3 folder such as database/: no leading '/', no '..'. */
export const s3Folder = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[A-Za-z0-9._\-/]+\/$/, { message: 'expected an S3 folder ending in "/", such as database/' })
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), { message: "no leading '/' and no '..'" });

/** A Redis key pattern for SCAN MATCH (it must also be allowlisted in configuration): no control characters, never one matching every key. */
export const redisKeyPattern = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\r\n\0]+$/, { message: 'no control characters' })
  .refine((p) => !/^[*?]*$/.test(p), { message: 'would match every key' });
