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
      readTestTarget: async (target: string) => ({ ...this.of(target), applied: [...this.of(target).applied] }),
      applyTestChange: async (target: string, stepId: string) => {
        this.active++;
        this.maxConcurrentApplies = Math.max(this.maxConcurrentApplies, this.active);
        try {
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
