/** Every workflow type the worker registers, by its catalog name. */
export { preflight } from './preflight';
