import { testbedLayout } from '../layout';
import { nodeDown, nodeLeftovers, nodeUp } from './node-lifecycle';
import { nodeNames } from './node-names';

/**
 * `npm run testbed:node -- up|down|check`: the real node of this test bed (TESTBED_PORT_BASE,
 * TESTBED_STATE_DIR) by hand. `up` expects the control plane up (`TESTBED_REAL_NODE=1 npm run testbed -- up`
 * does both); `check` lists what this port base's node left on the host and exits 1 if anything.
 */
async function main(): Promise<void> {
  const command = process.argv[2];
  const layout = testbedLayout();
  const log = (line: string) => console.error(`[testbed:node] ${line}`);
  if (command === 'up') {
    const t0 = Date.now();
    const node = await nodeUp(layout, log);
    console.log(`node ${node.nodeName} Ready at ${node.nodeIp} in ${Date.now() - t0} ms; images: ${Object.values(node.images).join(' ')}`);
  } else if (command === 'down') {
    await nodeDown(layout, log);
    console.log(`node ${nodeNames(layout).nodeName} torn down`);
  } else if (command === 'check') {
    const leftovers = nodeLeftovers(layout);
    for (const item of leftovers) console.log(item);
    if (leftovers.length > 0) {
      console.error(`${leftovers.length} leftover(s) of the node of port base ${layout.portBase}`);
      process.exit(1);
    }
    console.log(`nothing left of the node of port base ${layout.portBase}`);
  } else {
    throw new Error('usage: npm run testbed:node -- up|down|check');
  }
}

main().catch((err: unknown) => {
  console.error(`testbed:node: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
