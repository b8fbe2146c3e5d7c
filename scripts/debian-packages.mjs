// What the pretest scripts (ensure-chromium.mjs, ensure-nginx.mjs) share: is this a Debian-like
// system with apt-get, are we root, and apt-get with its output shown as it goes. Plain JavaScript,
// so it runs on the machine's own Node (20) as well as on 24.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Debian, Ubuntu and their derivatives, by /etc/os-release (ID or ID_LIKE). */
export function isDebianLike() {
  let release = '';
  try {
    release = readFileSync('/etc/os-release', 'utf8');
  } catch {
    return existsSync('/etc/debian_version');
  }
  const field = (name) => (new RegExp(`^${name}="?([^"\\n]*)"?$`, 'm').exec(release)?.[1] ?? '').split(/\s+/);
  return [...field('ID'), ...field('ID_LIKE')].some((id) => id === 'debian' || id === 'ubuntu');
}

/** The executable `name` on PATH, or undefined. */
export function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Runs apt-get with its output shown as it goes, telling `say` what it runs; false when it failed. */
export function aptGet(args, say) {
  say(`apt-get ${args.join(' ')}`);
  const result = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) say(`apt-get could not be run: ${result.error.message}`);
  return result.status === 0;
}

/** apt-get install of one package: at once when the package lists know it, else after an update. */
export function aptInstall(pkg, say) {
  const install = () => aptGet(['install', '-y', '-q', '--no-install-recommends', pkg], say);
  return install() || (aptGet(['update', '-q'], say) && install());
}
