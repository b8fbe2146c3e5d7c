/**
 * The organization's name, support contact and logo on the pages and in the mails people see
 * (`authorizationServer.branding`). Gatehouse's own name appears only as "Powered by Gatehouse".
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../../shared/config/load.ts';

export interface Branding {
  organizationName: string;
  /** An email address or an https URL. */
  supportContact?: string | undefined;
  /** Whether a logo is served at LOGO_PATH. */
  logo?: boolean;
}

export const DEFAULT_BRANDING: Branding = { organizationName: 'Gatehouse' };

/** Where the logo is served, on the authorization server's own origin (CSP `img-src 'self'`). */
export const LOGO_PATH = '/branding/logo';

const LOGO_MAX_BYTES = 256 * 1024;

/** Raster formats only: an SVG is a document that can run script when opened on its own. */
const LOGO_TYPES: Readonly<Record<string, string>> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
};

export interface Logo {
  type: string;
  bytes: Buffer;
}

/** Reads the configured logo once, at start; a wrong type or size stops the start with what to do. */
export function loadLogo(logoFile: string, baseDir: string): Logo {
  const file = path.resolve(baseDir, logoFile);
  const type = LOGO_TYPES[path.extname(file).toLowerCase()];
  if (!type) {
    throw new ConfigError(
      `authorizationServer.branding.logoFile: ${file} is not a .png, .jpg, .jpeg or .webp file (SVG is not accepted: it can carry script)`,
    );
  }
  const size = statSync(file, { throwIfNoEntry: false })?.size;
  if (size === undefined)
    throw new ConfigError(`authorizationServer.branding.logoFile: ${file} does not exist`);
  if (size > LOGO_MAX_BYTES) {
    throw new ConfigError(`authorizationServer.branding.logoFile: ${file} is larger than 256 KiB`);
  }
  return { type, bytes: readFileSync(file) };
}
