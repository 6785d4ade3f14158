const Sequencer = require('@jest/test-sequencer').default;

/**
 * Jest's own order, then the real node's tests (test/node/*.node-test.ts, they take over
 * short-drama-prod's app for minutes), and teardown.node-test.ts last of all: it takes the node down.
 */
class TestbedSequencer extends Sequencer {
  async sort(tests) {
    const rank = (test) => (test.path.endsWith('teardown.node-test.ts') ? 2 : test.path.endsWith('.node-test.ts') ? 1 : 0);
    const sorted = await super.sort(tests);
    return sorted
      .map((test, index) => ({ test, index }))
      .sort((a, b) => rank(a.test) - rank(b.test) || a.index - b.index)
      .map(({ test }) => test);
  }
}

module.exports = TestbedSequencer;
