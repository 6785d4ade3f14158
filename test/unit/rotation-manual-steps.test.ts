import { manualSteps } from '../../workflows/rotate-database-password-restore';
import type { Rotation } from '../../workflows/rotate-database-password-plans';

/** The commands people are given when the automatic restore gives up: on a sealed Secret they change the SealedSecret. */
describe('rotateDatabasePassword: commands to restore by hand', () => {
  const rotation = (sealed?: string) =>
    ({
      input: { namespace: 'short-drama-prod', secret: 'app-secrets', key: 'DATABASE_PASSWORD', role: 'short_drama_app', database: 'short_drama_prod', appDeployment: 'short-drama-app' },
      staged: 'DATABASE_PASSWORD_NEXT',
      previous: 'DATABASE_PASSWORD_PREVIOUS',
      version: 'v1',
      ...(sealed ? { sealed } : {}),
    }) as unknown as Rotation;

  test('a plain Secret is patched', () => {
    const steps = manualSteps(rotation(), { 'stage-password': 'done', 'alter-role': 'done', 'update-secret': 'done' }, { promoted: true, roleRestored: true });
    expect(steps.join('\n')).toContain('kubectl -n short-drama-prod patch secret app-secrets');
    expect(steps.join('\n')).not.toContain('sealedsecret');
  });

  test('a sealed Secret: the SealedSecret ciphertexts are moved back, the Secret never patched, the unseal waited for', () => {
    const steps = manualSteps(
      rotation('app-secrets'),
      { 'stage-password': 'done', 'alter-role': 'done', 'update-secret': 'done', 'restart-app': 'attempted' },
      { promoted: true, roleRestored: false },
    );
    const text = steps.join('\n');
    expect(text).not.toContain('patch secret ');
    expect(text).toContain(`"op":"move","from":"/spec/encryptedData/DATABASE_PASSWORD_PREVIOUS","path":"/spec/encryptedData/DATABASE_PASSWORD"`);
    expect(text).toContain('/spec/template/metadata/annotations/runbooks.example~1password-version');
    expect(text).toContain('/spec/encryptedData/DATABASE_PASSWORD_NEXT');
    expect(text).toContain('\\password short_drama_app');
    expect(text).toContain('Synced');
    expect(text).toContain('rollout restart deployment/short-drama-app');
  });
});
