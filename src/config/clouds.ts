/**
 * API and login hosts per Microsoft 365 cloud (reference management-api.md §1). The API host is
 * also the token resource / scope. China's API host is only weakly sourced, so explicit hosts
 * (`api_url`, `login_url`) can always override.
 */
export const CLOUDS = {
  commercial: { apiUrl: 'https://manage.office.com', loginUrl: 'https://login.microsoftonline.com' },
  gcc: { apiUrl: 'https://manage-gcc.office.com', loginUrl: 'https://login.microsoftonline.com' },
  'gcc-high': { apiUrl: 'https://manage.office365.us', loginUrl: 'https://login.microsoftonline.us' },
  dod: { apiUrl: 'https://manage.protection.apps.mil', loginUrl: 'https://login.microsoftonline.us' },
  china: { apiUrl: 'https://manage.office.cn', loginUrl: 'https://login.partner.microsoftonline.cn' },
} as const;
export type CloudName = keyof typeof CLOUDS;

/**
 * A known cloud name. An own-property check: `in` would also accept `constructor` or `toString`
 * (inherited from Object.prototype) and leave the tenant without hosts.
 */
export function isCloudName(v: unknown): v is CloudName {
  return typeof v === 'string' && Object.hasOwn(CLOUDS, v);
}
