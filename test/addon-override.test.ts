// IRCONSTYLE_ADDON=<file> (lib/native/loader.ts): exactly that build of the addon, or a clear error naming it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { addonPath } from '../lib/native/loader.js';

describe('IRCONSTYLE_ADDON', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('loads exactly the file it names', async () => {
    vi.resetModules();
    vi.stubEnv('IRCONSTYLE_ADDON', addonPath);
    const fresh = await import('../lib/native/loader.js');
    expect(fresh.addonPath).toBe(addonPath);
    expect(typeof fresh.native.info).toBe('function');
  });

  it('fails with the variable and the loader\'s reason when the file cannot be loaded', async () => {
    vi.resetModules();
    vi.stubEnv('IRCONSTYLE_ADDON', '/nonexistent/irconstyle.node');
    await expect(import('../lib/native/loader.js')).rejects.toMatchObject({
      code: 'E_INTERNAL',
      message: expect.stringMatching(
        /IRCONSTYLE_ADDON=\/nonexistent\/irconstyle\.node could not be loaded \(Cannot find module/,
      ),
    });
  });
});
