/**
 * A wait in words for people: "about 14 minutes", not "812 seconds". Rounded to the unit a person
 * plans with; never "0 minutes" (a wait under a minute is "less than a minute").
 */
export function waitInWords(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return 'less than a minute';
  if (s < 90) return 'about a minute';
  if (s < 3600 - 90) return `about ${Math.round(s / 60)} minutes`;
  if (s < 5400) return 'about an hour';
  return `about ${Math.round(s / 3600)} hours`;
}
