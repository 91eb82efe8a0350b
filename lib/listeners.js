'use strict';

const { kDispatchOwn } = require('./internal.js');

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

/** A listener that reports what the original throws (or rejects with);
 * a function listener is called on `owner`, the target it was added to. */
function guarded(listener, reportListenerError, owner) {
  return (event) => {
    try {
      const result = typeof listener === 'function' ? listener.call(owner, event) : listener.handleEvent(event);
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
  #owner;

  /** `name` names the class in the warnings (EventEndpoint, Channel);
   * `owner` is the target the listeners are added to. */
  constructor(name, owner) {
    this.#report = reporter(name);
    this.#owner = owner;
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
      guard = guarded(listener, this.#report, this.#owner);
      byKey.set(key, guard);
    }
    return guard;
  }
}

/** EventTarget's prototype without its constructor, for LazyEventTarget to
 * inherit (so that `instanceof EventTarget` holds). */
function EventTargetMethods() {}
EventTargetMethods.prototype = EventTarget.prototype;

/** By event class: its subclass for a LazyEventTarget's own events. */
const ownClasses = new Map();

/**
 * The subclass of `Base` (Event, CloseEvent) for an event of a
 * LazyEventTarget's own: `target` and `currentTarget` name the object it
 * was dispatched on (not the inner EventTarget that runs the listeners).
 */
function ownEventClass(Base) {
  let Own = ownClasses.get(Base);
  if (Own !== undefined) return Own;
  Own = class extends Base {
    #owner;

    constructor(owner, type, init) {
      super(type, init);
      this.#owner = owner;
    }

    get target() {
      return this.#owner;
    }

    get srcElement() {
      return this.#owner;
    }

    /** The owner while the event is dispatched; null before and after. */
    get currentTarget() {
      return super.currentTarget === null ? null : this.#owner;
    }

    composedPath() {
      return super.composedPath().length === 0 ? [] : [this.#owner];
    }
  };
  Object.defineProperty(Own, 'name', { value: Base.name });
  ownClasses.set(Base, Own);
  return Own;
}

/**
 * An `EventTarget` whose listeners are guarded (one that throws, or
 * rejects, is reported as a `<name>ListenerError` warning, and the event
 * goes on to the others), for objects made by the hundred thousand (an
 * endpoint per client, a channel per user or room), most of which few
 * listen to: the EventTarget that holds the listeners is made with the
 * first one. In Node an EventTarget costs about 420 bytes (two maps), as
 * much as the rest of an idle adopted endpoint.
 *
 * What differs from an EventTarget: an event it dispatches itself
 * (`kDispatchOwn`) names it as `target`; an event a program dispatches on it
 * reaches its listeners but names the inner target (a built-in Event's
 * target cannot be set); and `events.setMaxListeners()` and
 * `getEventListeners()` do not take it.
 */
class LazyEventTarget extends EventTargetMethods {
  /** The EventTarget that holds the listeners, and their guards (named in
   * warnings by the subclass's `Symbol.toStringTag`). */
  #listeners = null;

  #listenersToAdd() {
    this.#listeners ??= { inner: new EventTarget(), guards: new ListenerGuards(this[Symbol.toStringTag], this) };
    return this.#listeners;
  }

  addEventListener(type, listener, options = undefined) {
    const { inner, guards } = this.#listenersToAdd();
    inner.addEventListener(type, guards.of(type, listener, options, true) ?? listener, options);
  }

  removeEventListener(type, listener, options = undefined) {
    if (this.#listeners === null) return;
    const { inner, guards } = this.#listeners;
    inner.removeEventListener(type, guards.of(type, listener, options, false) ?? listener, options);
  }

  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError('The "event" argument must be an instance of Event');
    if (this.#listeners === null) return !event.defaultPrevented;
    return this.#listeners.inner.dispatchEvent(event);
  }

  /** Dispatches an event of `type` (of class `Base`, made with `init`)
   * that names this object as its target; nothing is made when nobody
   * listens. */
  [kDispatchOwn](type, Base = Event, init = undefined) {
    const inner = this.#listeners?.inner;
    if (inner === undefined) return;
    const Own = ownEventClass(Base);
    inner.dispatchEvent(new Own(this, type, init));
  }
}

module.exports = { LazyEventTarget };
