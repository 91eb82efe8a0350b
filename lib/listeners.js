'use strict';

// Listeners of an endpoint or a channel that throw (or reject) are
// reported, not allowed to end the process: on an `EventTarget` in Node a
// throwing listener would otherwise do so (browsers report it and go on,
// which is what happens here), and a stream must close cleanly whatever its
// listeners do.

/** A warning named `<target>ListenerError` (EventEndpoint, Channel). */
function reporter(target) {
  return (err) =>
    process.emitWarning(err instanceof Error ? err.message : String(err), {
      type: `${target}ListenerError`,
      detail: `A ${target} listener threw; the event went on to the other listeners.\n${err?.stack ?? ''}`,
    });
}

/** A listener that reports what the original throws (or rejects with). */
function guarded(listener, reportListenerError) {
  return function (event) {
    try {
      const result = typeof listener === 'function' ? listener.call(this, event) : listener.handleEvent(event);
      // Node reports a rejected promise from a listener as uncaught; the
      // promise is dealt with here and not handed back.
      if (result !== null && typeof result?.then === 'function') result.then(undefined, reportListenerError);
    } catch (err) {
      reportListenerError(err);
    }
  };
}

/**
 * The guarded wrappers of one target's listeners: listener → (type and
 * capture → its wrapper), so that adding the same listener twice is still
 * one listener, and removing it works.
 */
class ListenerGuards {
  #guards = new WeakMap();
  #report;

  /** `target` names the class in the warnings (EventEndpoint, Channel). */
  constructor(target) {
    this.#report = reporter(target);
  }

  /** The wrapper to add (`create`) or remove in place of `listener`, or
   * undefined for a value that is no listener (EventTarget ignores it). */
  of(type, listener, options, create) {
    if (listener === null || (typeof listener !== 'function' && typeof listener !== 'object')) return undefined;
    const key = `${type}\0${typeof options === 'boolean' ? options : Boolean(options?.capture)}`;
    let byKey = this.#guards.get(listener);
    if (byKey === undefined) {
      if (!create) return undefined;
      byKey = new Map();
      this.#guards.set(listener, byKey);
    }
    let guard = byKey.get(key);
    if (guard === undefined && create) {
      guard = guarded(listener, this.#report);
      byKey.set(key, guard);
    }
    return guard;
  }
}

/** An `EventTarget` whose listeners are guarded: one that throws (or
 * rejects) is reported as a `<name>ListenerError` warning, and the event
 * goes on to the others. */
class GuardedEventTarget extends EventTarget {
  /** The class named in warnings; its guards, made with the first
   * listener (a channel per user that nobody listens to costs nothing). */
  #name;
  #guards = null;

  constructor(name) {
    super();
    this.#name = name;
  }

  addEventListener(type, listener, options = undefined) {
    this.#guards ??= new ListenerGuards(this.#name);
    const guard = this.#guards.of(type, listener, options, true);
    super.addEventListener(type, guard ?? listener, options);
  }

  removeEventListener(type, listener, options = undefined) {
    const guard = this.#guards?.of(type, listener, options, false);
    super.removeEventListener(type, guard ?? listener, options);
  }
}

module.exports = { GuardedEventTarget };
