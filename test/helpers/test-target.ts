import { assertNamespaceAllowed } from '../../activities/guards';
import { forbiddenNamespaces } from '../../config/schema';

/**
 * A stand-in target for kernel tests (workflow logic only; the real systems have their own
 * tests): state in this process, read and changed through two activities, with a record of
 * every apply and of how many ran at the same time.
 */
export class TestTargets {
  private readonly state = new Map<string, { version: number; applied: string[] }>();
  readonly applies: Array<{ target: string; stepId: string }> = [];
  private active = 0;
  maxConcurrentApplies = 0;
  /** How long an apply takes (activity work, so two overlapping applies can be seen). */
  applyMs = 0;
  /** Applies begun, including those a gate still holds. */
  readonly started: Array<{ target: string; stepId: string }> = [];
  private gate: Promise<void> | undefined;

  /** Holds every apply that starts from now on until the returned function is called: a test keeps an apply (and its locks) going until it has seen what it needs. */
  holdApplies(): () => void {
    let open = () => {};
    this.gate = new Promise((resolve) => (open = resolve));
    return () => {
      this.gate = undefined;
      open();
    };
  }

  of(target: string) {
    let s = this.state.get(target);
    if (!s) this.state.set(target, (s = { version: 1, applied: [] }));
    return s;
  }

  bump(target: string): void {
    this.of(target).version++;
  }

  activities() {
    return {
      readTestTarget: async (target: string) => {
        // As every real activity does: a protected namespace is refused before anything is read.
        const namespace = target.split('/')[0]!;
        if (forbiddenNamespaces.includes(namespace)) assertNamespaceAllowed(namespace, { namespaces: [namespace] });
        return { ...this.of(target), applied: [...this.of(target).applied] };
      },
      applyTestChange: async (target: string, stepId: string) => {
        this.active++;
        this.maxConcurrentApplies = Math.max(this.maxConcurrentApplies, this.active);
        try {
          this.started.push({ target, stepId });
          await this.gate;
          if (this.applyMs > 0) await new Promise((r) => setTimeout(r, this.applyMs));
          this.applies.push({ target, stepId });
          const s = this.of(target);
          if (!s.applied.includes(stepId)) s.applied.push(stepId);
        } finally {
          this.active--;
        }
      },
    };
  }
}
