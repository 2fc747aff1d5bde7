/** `fields` of a log line about the room `name`, naming it with rooms on (the endpoint's one room is `''`). */
export function inRoom<T extends object> (fields: T, name: string): T | (T & { room: string }) {
  return name === '' ? fields : { ...fields, room: name }
}
