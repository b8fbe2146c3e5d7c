#!/usr/bin/env node
// Makes sure the nginx recipe's test (test/cli/nginx-proxy.test.ts) has Debian's nginx before
// `npm test` runs it; npm runs this as part of `pretest`. Plain JavaScript (the machine's Node).
//
//   nginx present at /usr/sbin/nginx                    -> nothing to do
//   GATEHOUSE_NGINX_TESTS=0                             -> nothing to do (the test is skipped)
//   missing, root on Debian/Ubuntu with apt-get         -> apt-get install nginx-light
//   otherwise                                           -> how to get it; the test skips itself,
//                                                          except in CI (CI=true), where this fails
import { existsSync } from 'node:fs';
import { aptInstall, isDebianLike, isRoot, onPath } from './debian-packages.mjs';

const NGINX = '/usr/sbin/nginx';
const say = (line) => console.log(`[nginx] ${line}`);

function cannot(reason) {
  console.error(
    [
      `[nginx] ${reason}`,
      '[nginx] The nginx recipe of docs/deployment.md is tested with Debian nginx. Either:',
      '[nginx]   install it (Debian/Ubuntu):  sudo apt-get install -y nginx-light',
      '[nginx]   skip that test:              GATEHOUSE_NGINX_TESTS=0 npm test',
      '[nginx] (npm test installs it by itself when run as root on Debian or Ubuntu.)',
    ].join('\n'),
  );
  if (process.env.CI === 'true') process.exit(1);
  say('the nginx test will be skipped');
  process.exit(0);
}

if (existsSync(NGINX)) process.exit(0);
if (process.env.GATEHOUSE_NGINX_TESTS === '0') {
  say(`no nginx at ${NGINX}; GATEHOUSE_NGINX_TESTS=0, so its test will be skipped`);
  process.exit(0);
}
if (!isDebianLike() || !onPath('apt-get'))
  cannot(`nginx is not installed at ${NGINX}, and this is not Debian or Ubuntu with apt-get.`);
if (!isRoot()) cannot(`nginx is not installed at ${NGINX}, and installing it needs root.`);

say(
  `nginx is not installed at ${NGINX}: installing Debian's nginx-light package for the recipe's test (about 1 MB)`,
);
if (!aptInstall('nginx-light', say)) cannot('apt-get could not install nginx-light (see its output above).');
if (!existsSync(NGINX)) cannot(`apt-get finished, but there is still nothing at ${NGINX}.`);
say('installed nginx-light');
