import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorizationErrorPage } from './error-page.ts';

const text = (html: string) =>
  html
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ');

test("the library's errors become what happened and what to do, with the code kept for support", () => {
  const expired = text(
    authorizationErrorPage({ error: 'invalid_request', error_description: 'interaction session not found' }),
  );
  assert.match(expired, /This sign-in link has expired/);
  assert.match(expired, /start signing in again/);
  assert.match(expired, /Error: invalid_request/);
  assert.doesNotMatch(expired, /interaction session/);

  const client = text(
    authorizationErrorPage({ error: 'invalid_client', error_description: 'client is invalid' }),
  );
  assert.match(client, /This application is not known here/);

  const redirect = text(
    authorizationErrorPage({
      error: 'invalid_redirect_uri',
      error_description: "redirect_uri did not match any of the client's registered redirect_uris",
    }),
  );
  assert.match(redirect, /cannot receive your sign-in/);
  assert.match(redirect, /Do not continue/);

  const other = text(
    authorizationErrorPage({ error: 'invalid_request', error_description: 'missing required parameter' }),
  );
  assert.match(other, /Sign-in could not continue/);
  assert.match(other, /missing required parameter Go back to your application and try again\./);
});
