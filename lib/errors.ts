/** Error codes used throughout irconstyle. */
export type IrcErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_ATTR'
  | 'E_ARITY'
  | 'E_DISPOSED'
  | 'E_ARG'
  | 'E_FORMAT'
  | 'E_IO'
  | 'E_NO_GRAD'
  | 'E_INTERNAL'
  | 'E_OOM'
  | 'E_DEVICE'
  | 'E_CUDA'
  | 'E_DEVICE_LOST'
  | 'E_CAPTURE';

export const IRC_ERROR_CODES: readonly IrcErrorCode[] = [
  'E_SHAPE', 'E_DTYPE', 'E_ATTR', 'E_ARITY', 'E_DISPOSED', 'E_ARG',
  'E_FORMAT', 'E_IO', 'E_NO_GRAD', 'E_INTERNAL', 'E_OOM', 'E_DEVICE', 'E_CUDA', 'E_DEVICE_LOST',
  'E_CAPTURE',
];

/** The one error type thrown by irconstyle; `code` is machine-readable. */
export class IrcError extends Error {
  code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IrcError';
    this.code = code;
  }
}

/** True when `e` is an IrcError (optionally with the given code). */
export function isIrcError(e: unknown, code?: string): e is IrcError {
  return e instanceof IrcError && (code === undefined || e.code === code);
}
