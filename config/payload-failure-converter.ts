import { DefaultFailureConverter } from '@temporalio/common';

/**
 * With payload encryption on, error messages and stack traces go through the codec too (Temporal
 * keeps them in plaintext by default, and ours name targets). Workers load this module into the
 * workflow sandbox by path, so it imports nothing but @temporalio/common.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
