import { invalidInput } from './errors';

/** An integer input within bounds (or the fallback when absent); anything else is InvalidInput naming the field. */
export function validateInt(value: unknown, name: string, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidInput(`${name}: expected an integer from ${min} to ${max}`);
  }
  return value;
}
