const Sequencer = require('@jest/test-sequencer').default;

/** The node's tests in name order, and teardown.node-test.ts (which takes the node down) always last. */
class NodeTestSequencer extends Sequencer {
  sort(tests) {
    const last = (test) => (test.path.endsWith('teardown.node-test.ts') ? 1 : 0);
    return [...tests].sort((a, b) => last(a) - last(b) || a.path.localeCompare(b.path));
  }
}

module.exports = NodeTestSequencer;
