/**
 * The Krmx username rule: 2 to 32 characters; letters, digits, `.`, `-`, `@` and `_`;
 * starts with a letter, ends with a letter or digit, and has no two special characters in a row.
 */
export const usernameRegex = /^[a-zA-Z](?!.*[._@-]{2})[a-zA-Z0-9._@-]{0,30}[a-zA-Z0-9]$/

/** The default `isValidUsername` option. */
export function isValidKrmxUsername (username: string): boolean {
  return usernameRegex.test(username)
}

/** The default rule of room names: 1 to 64 letters, digits, `.`, `_` and `-`; no braces, so that a name can be a Redis hash tag. */
export const roomRegex = /^[A-Za-z0-9._-]{1,64}$/

export function isValidDefaultRoom (room: string): boolean {
  return roomRegex.test(room)
}
