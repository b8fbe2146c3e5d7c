/**
 * What a person reads when oidc-provider cannot send them back to their application (it renders
 * instead of redirecting: the client or its redirect URI cannot be trusted, or the sign-in is gone).
 * The library's descriptions are for developers ("interaction session not found"); each known one
 * becomes what happened and what to do, with the OAuth error code kept as a detail for support.
 */
import type { Branding } from './branding.ts';
import { messagePage } from './message-page.ts';

interface Explanation {
  title: string;
  message: string;
}

const EXPIRED: Explanation = {
  title: 'This sign-in link has expired',
  message:
    'It was already used, or it waited too long. Go back to your application and start signing in again: it will give you a new link.',
};

/** By oidc-provider's `error_description` (lib/helpers/errors.js and the actions), then by `error`. */
const BY_DESCRIPTION: ReadonlyArray<[RegExp, Explanation]> = [
  [/interaction session (not found|and authentication session mismatch)|session not found/i, EXPIRED],
  [
    /could not find logout details|xsrf token invalid/i,
    {
      title: 'This sign-out page has expired',
      message:
        'Nobody was signed out. To sign out, open the sign-out page again from your application and choose Sign out there.',
    },
  ],
  [
    /redirect_uri did not match/i,
    {
      title: 'This application cannot receive your sign-in',
      message:
        'It asked to be sent your sign-in at an address it never registered. Do not continue: this can be an attempt to capture your sign-in. Tell whoever gave you the application.',
    },
  ],
];

const BY_ERROR: Readonly<Record<string, Explanation>> = {
  invalid_client: {
    title: 'This application is not known here',
    message:
      'The application that sent you here is not registered with this sign-in service, or no longer is. Go back to it and start again; if that fails, tell whoever gave you the application.',
  },
  invalid_redirect_uri: BY_DESCRIPTION[1]![1],
};

export function authorizationErrorPage(
  out: { error?: unknown; error_description?: unknown },
  branding?: Branding,
): string {
  const error = typeof out.error === 'string' ? out.error : 'server_error';
  const description = typeof out.error_description === 'string' ? out.error_description : '';
  const known = BY_DESCRIPTION.find(([pattern]) => pattern.test(description))?.[1] ?? BY_ERROR[error];
  return messagePage({
    title: known?.title ?? 'Sign-in could not continue',
    message:
      known?.message ??
      `${description || 'The request could not be processed.'} Go back to your application and try again.`,
    details: `Error: ${error}`,
    branding,
  });
}
