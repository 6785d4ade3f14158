import { testbedLayout } from '../../scripts/testbed/layout';
import { nodeDown, nodeLeftovers } from '../../scripts/testbed/node/node-lifecycle';

// The node's clean-up (pod sandboxes, kube-proxy --cleanup, the host's rules) takes more than a unit test's time.
jest.setTimeout(600_000);

/** Run last (test/node/sequencer.js): the node goes down, and nothing of it stays on the host. */
const layout = testbedLayout();

test('down leaves nothing of the node on the host (check reports nothing)', async () => {
  expect(nodeLeftovers(layout).length).toBeGreaterThan(0); // the check sees a running node
  await nodeDown(layout);
  expect(nodeLeftovers(layout)).toEqual([]);
});
