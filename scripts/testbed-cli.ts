import { allServices, down, up, type ServiceName } from './testbed';

/** `npm run testbed -- up [service...]` / `down [service...]`: the local sandbox by hand. */
async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const unknown = rest.filter((name) => !allServices.includes(name as ServiceName));
  if (unknown.length > 0) throw new Error(`unknown service ${unknown.join(', ')}; expected some of ${allServices.join(', ')}`);
  const services = rest.length > 0 ? (rest as ServiceName[]) : allServices;
  if (command === 'up') {
    const handle = await up({ services });
    console.log(`test bed up (${handle.started.length > 0 ? `started ${handle.started.join(', ')}` : 'all reused'}); env file: ${handle.envFile}`);
  } else if (command === 'down') {
    await down(services);
    console.log(`stopped ${services.join(', ')}`);
  } else {
    throw new Error(`usage: npm run testbed -- up|down [${allServices.join(' ')}]`);
  }
}

main().catch((err: unknown) => {
  console.error(`testbed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
