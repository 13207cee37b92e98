/** setTimeout caps delays at 2^31-1 ms and fires at once beyond; this re-arms instead. */
const MAX_DELAY = 2 ** 31 - 1;

/** Calls `fn` after `ms` milliseconds (any finite length); returns a cancel function. */
export function setLongTimeout(fn: () => void, ms: number): () => void {
  let timer: NodeJS.Timeout;
  const deadline = performance.now() + ms;
  // Node's timers keep whole milliseconds and may fire a fraction early: re-arm until the
  // deadline has really passed, so a timeout never ends a wait before it is due.
  const arm = (left: number) => {
    timer = setTimeout(
      () => {
        const rest = deadline - performance.now();
        if (rest > 0) arm(rest);
        else fn();
      },
      Math.min(Math.ceil(left), MAX_DELAY),
    );
  };
  arm(ms);
  return () => clearTimeout(timer);
}

export function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T> | null)?.then === 'function';
}
