import createError from '@fastify/error'

/** A plugin option has the wrong type or value; registration fails with it. */
export const FST_LINK_INVALID_OPTION = createError(
  'FST_LINK_INVALID_OPTION',
  'Invalid fastify-link-server option "%s": %s',
  500,
  TypeError
)

// The errors of the user API carry the HTTP status of what they mean, so that a route that lets one
// through answers it (404 for an unknown user, 409 for a conflict) instead of 500. Errors of a wrong
// call (a message that is not one, a bad option) stay 500: they are bugs of the application.

/** The plugin was registered twice in one encapsulation context. */
export const FST_LINK_ALREADY_REGISTERED = createError(
  'FST_LINK_ALREADY_REGISTERED',
  'fastify-link-server is already registered in this context (at %s): register it once per context, or in sibling contexts with their own prefix',
  500
)

/** A user API method was called before the Fastify instance was ready. */
export const FST_LINK_NOT_READY = createError(
  'FST_LINK_NOT_READY',
  'Cannot %s before the link server is ready',
  503
)

/** A user API method was called while or after the Fastify instance closed. */
export const FST_LINK_CLOSED = createError(
  'FST_LINK_CLOSED',
  'Cannot %s when the link server is %s',
  503
)

/** The named user does not exist. */
export const FST_LINK_UNKNOWN_USER = createError(
  'FST_LINK_UNKNOWN_USER',
  'Cannot %s: user "%s" does not exist',
  404
)

/** The named user exists but has no linked connection. */
export const FST_LINK_USER_NOT_LINKED = createError(
  'FST_LINK_USER_NOT_LINKED',
  'Cannot %s: user "%s" is not linked to a connection',
  409
)

/** `join` was called for a user that already exists. */
export const FST_LINK_USER_EXISTS = createError(
  'FST_LINK_USER_EXISTS',
  'Cannot join user "%s": the user already exists',
  409
)

/** `join` was called with a username that `isValidUsername` refuses. */
export const FST_LINK_INVALID_USERNAME = createError(
  'FST_LINK_INVALID_USERNAME',
  'Cannot join user "%s": invalid username',
  400
)

/** The application tried to send a message that is not `{ type: string, payload?: unknown }`. */
export const FST_LINK_INVALID_MESSAGE = createError(
  'FST_LINK_INVALID_MESSAGE',
  'Cannot %s: a message must be an object with a string type',
  500,
  TypeError
)

/** The application tried to send a message whose type uses the reserved `krmx/` prefix. */
export const FST_LINK_RESERVED_TYPE = createError(
  'FST_LINK_RESERVED_TYPE',
  'Cannot %s a message of type "%s": the "krmx/" prefix is reserved for the protocol',
  500
)

/**
 * The application tried to send a message that JSON cannot encode: a BigInt, a cycle, a `toJSON` that throws, or a
 * `toJSON` of the message itself that does not make a frame.
 */
export const FST_LINK_UNENCODABLE_MESSAGE = createError(
  'FST_LINK_UNENCODABLE_MESSAGE',
  'Cannot %s a message of type "%s": JSON cannot encode it (%s)',
  500,
  TypeError
)

/** The application tried to send a message whose payload fails its schema in `serverMessages`. */
export const FST_LINK_INVALID_PAYLOAD = createError(
  'FST_LINK_INVALID_PAYLOAD',
  'Cannot %s a message of type "%s": %s',
  500,
  TypeError
)

/** A message type has no schema where one is required: `send` with `serverMessages`, `handle` with `strictMessages`. */
export const FST_LINK_UNKNOWN_MESSAGE_TYPE = createError(
  'FST_LINK_UNKNOWN_MESSAGE_TYPE',
  'Cannot %s a message of type "%s": it has no schema in %s',
  500,
  TypeError
)

/** `handle` was called with a type that is not a string, or a handler that is not a function. */
export const FST_LINK_INVALID_HANDLER = createError(
  'FST_LINK_INVALID_HANDLER',
  'Cannot handle messages of type "%s": %s',
  500,
  TypeError
)

/** `join` was called while `maxUsers` users exist. */
export const FST_LINK_SERVER_FULL = createError(
  'FST_LINK_SERVER_FULL',
  'Cannot join user "%s": the server is full (maxUsers %s)',
  503
)

/** The cluster's Redis cannot be reached: at start (`ready()` fails with it), or for a change asked for during an outage. */
export const FST_LINK_CLUSTER_UNAVAILABLE = createError(
  'FST_LINK_CLUSTER_UNAVAILABLE',
  'Cannot %s: the cluster is unavailable (%s)',
  503
)

/** `room(name)` was called with a name that `isValidRoom` refuses. */
export const FST_LINK_INVALID_ROOM = createError(
  'FST_LINK_INVALID_ROOM',
  'Invalid room name "%s": isValidRoom refuses it',
  400
)

/** With rooms on, a method of the user space was called on `linkServer` itself, which has no user space of its own. */
export const FST_LINK_ROOM_REQUIRED = createError(
  'FST_LINK_ROOM_REQUIRED',
  'Cannot %s on linkServer: rooms are on (the path has :room), so every user is in a room; call linkServer.room(name).%s() instead',
  500
)

/** With rooms off, `room(name)` was called with a name other than `''`, the endpoint's one room. */
export const FST_LINK_ROOMS_OFF = createError(
  'FST_LINK_ROOMS_OFF',
  'Cannot open room "%s": rooms are off (the path has no :room parameter); the endpoint is one room, room("")',
  500
)

/** `room(name).join()` would create a room while `maxRooms` rooms exist. */
export const FST_LINK_TOO_MANY_ROOMS = createError(
  'FST_LINK_TOO_MANY_ROOMS',
  'Cannot create room "%s": %s rooms exist (maxRooms)',
  503
)

/** In a cluster, a read of a room this instance does not serve yet (its users are not loaded here). */
export const FST_LINK_ROOM_NOT_LOADED = createError(
  'FST_LINK_ROOM_NOT_LOADED',
  'Cannot read room "%s": this instance does not serve it, so its users are not loaded here; await linkServer.room(name).load() first',
  500
)
