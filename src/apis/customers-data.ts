/**
 * Seed data of the customers API. A record belongs to the user whose token's `sub` equals its
 * `sub`, or whose verified `email` equals its `email`; the seeds use email, since a user's `sub`
 * is assigned by the authorization server at first sign-in.
 */

export interface CustomerRecord {
  id: string;
  name: string;
  email: string;
  sub?: string;
  tier: 'standard' | 'premium';
  country: string;
  since: string;
}

export const CUSTOMERS: readonly CustomerRecord[] = [
  {
    id: 'cus-1001',
    name: 'Alice Example',
    email: 'alice@example.com',
    tier: 'premium',
    country: 'NL',
    since: '2019-04-02',
  },
  {
    id: 'cus-1002',
    name: 'Bob Example',
    email: 'bob@example.com',
    tier: 'standard',
    country: 'US',
    since: '2022-11-17',
  },
];
