/** One effect a remedy promised, judged on the state its verify step reads from the real system. */
export interface PromisedEffect<State> {
  /** What the remedy promised, e.g. "max_connections 150 after the restart of short-drama-prod/postgres". */
  promised: string;
  holds: (state: State) => boolean;
  /** What the state shows of it, worded to follow "but" when it does not hold, e.g. "max_connections is still 100". */
  found: (state: State) => string;
}

/**
 * A remedy's verify step: a read of the real system and the effects it must show. Effects may take
 * time (a pod to restart), so the read is repeated until they hold or `withinSeconds` is over.
 */
export interface EffectCheck<State> {
  /** Reads the real system; activities only. */
  read: () => Promise<State>;
  /** The state in one line, as a read step shows it. */
  describe: (state: State) => string;
  /** What the steps that were applied promised; none: the step is a plain read. */
  effects: PromisedEffect<State>[];
  /** How long the effects may take to show; default 30 s. */
  withinSeconds?: number;
  /**
   * What runs recorded before effects were verified did at this point, so their histories replay:
   * the same read as a plain step, another read, or no step at all.
   */
  before: 'same read' | 'no step' | (() => Promise<State>);
}

/** The sentence a run that did not get its effect ends with: "<runbook> promised X, but Y". */
export function brokenPromise(runbook: string, promised: string, found: string): string {
  return `${runbook} promised ${promised}, but ${found}`;
}

/** The timeline's line for effects that hold: "verified: X (Y); …". */
export function keptPromises<State>(effects: PromisedEffect<State>[], state: State): string {
  return `verified: ${effects.map((e) => `${e.promised} (${e.found(state)})`).join('; ')}`;
}

/** Waits between reads of an effect not there yet: 1 s, doubling, at most 10 s. */
export function nextWaitMs(previousMs: number | undefined): number {
  return previousMs === undefined ? 1000 : Math.min(previousMs * 2, 10_000);
}
