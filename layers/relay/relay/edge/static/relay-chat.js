// relay-chat.js: a browser's or app's side of the messaging relay, one ES module, no dependencies, no build step.
//
//   import { RelayChat } from "https://<your API>/relay-chat.js";
//   const chat = new RelayChat({ apiUrl: "https://<your API>", session: tokenAnswer });
//   chat.addEventListener("response", (event) => show(event.detail.response));
//   chat.start();
//   await chat.send("hello");
//
// `session` is the answer of POST /conversations/{id}/tokens that the page's back end got with its client token.
// The module sends with POST /messages, receives from the stream (`session.streamUrl`), reconnects with the last
// watermark (with backoff) when the socket closes, refreshes the token before it expires (POST /tokens/refresh),
// drops repeats by `id`, and pings so that an idle connection stays open.

const DEFAULTS = {
  pingSeconds: 300, // API Gateway closes a connection idle for 10 minutes
  refreshBeforeSeconds: 120, // refresh this long before the token expires (or at half its life, if sooner)
  reconnectMinMs: 500,
  reconnectMaxMs: 30000,
  sendAttempts: 4, // for 409, 429, 502, 503, 504 and network errors, with the same messageId
  seenIds: 1000, // how many response ids are remembered to drop repeats
};
const RETRYABLE = new Set([409, 429, 502, 503, 504]);

export class RelayError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.name = "RelayError";
    this.status = status;
    this.body = body;
  }
}

export class RelayChat extends EventTarget {
  // options: apiUrl (required), session (required: a token answer), watermark (resume after it), renew (an async
  // function returning a fresh token answer from your back end, called when the token can no longer be refreshed),
  // and any of DEFAULTS.
  constructor(options) {
    super();
    if (!options?.apiUrl || !options?.session?.token) throw new TypeError("RelayChat needs apiUrl and session");
    this.options = { ...DEFAULTS, ...options };
    this.apiUrl = options.apiUrl.replace(/\/+$/, "");
    this.session = options.session;
    this.watermark = options.watermark ?? null;
    this.status = "idle";
    this._seen = new Set();
    this._socket = null;
    this._attempt = 0;
    this._timers = {};
    this._frames = Promise.resolve(); // frames are handled one after another, in the order they came
    this._stopped = true;
  }

  get conversationId() {
    return this.session.conversationId;
  }

  get userId() {
    return this.session.userId;
  }

  start() {
    if (!this._stopped) return this;
    this._stopped = false;
    this._scheduleRefresh();
    this._open();
    return this;
  }

  stop() {
    this._stopped = true;
    for (const name of Object.keys(this._timers)) this._clear(name);
    this._socket?.close(1000, "stopped");
    this._socket = null;
    this._setStatus("stopped");
  }

  // Send a message as the session's user. `options`: type (default "text"), payload, messageId.
  // Resolves with the relay's receipt; rejects with a RelayError naming what is wrong (status 0: no answer was read).
  async send(text, options = {}) {
    const message = {
      userId: this.userId,
      conversationId: this.conversationId,
      messageId: options.messageId ?? newId(),
      type: options.type ?? "text",
      text,
      ...(options.payload === undefined ? {} : { payload: options.payload }),
    };
    for (let attempt = 1; ; attempt++) {
      let response;
      try {
        response = await this._call("POST", "/messages", message);
      } catch (error) {
        if (await this._refusesThisOrigin()) {
          throw new RelayError(0, {
            message:
              `the relay at ${this.apiUrl} does not allow this page's origin, ${globalThis.location?.origin}:` +
              " add it to the stack's BrowserOrigins (DEV_BROWSER_ORIGINS for make dev)",
          });
        }
        if (attempt >= this.options.sendAttempts) {
          throw new RelayError(0, { message: `could not reach the relay at ${this.apiUrl}: ${error.message}` });
        }
        await delay(backoff(attempt, this.options));
        continue;
      }
      if (response.ok) return response.json();
      const body = await response.json().catch(() => ({}));
      if (!RETRYABLE.has(response.status) || attempt >= this.options.sendAttempts) {
        throw new RelayError(response.status, body);
      }
      // Retry-After is whole seconds: pages refused in the same moment (their client over its rate) would all come
      // back in the same moment, so up to a second more at random.
      const retryAfter = Number(response.headers.get("retry-after"));
      await delay(retryAfter > 0 ? (retryAfter + Math.random()) * 1000 : backoff(attempt, this.options));
    }
  }

  // A new token for the same conversation and user (done on its own before the token expires).
  async refresh() {
    const response = await this._call("POST", "/tokens/refresh");
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 && this.options.renew) {
      this._useSession(await this.options.renew());
    } else if (!response.ok) {
      const error = new RelayError(response.status, body);
      this._emit("error", error);
      if (response.status === 401 || response.status === 403) this._expire();
      throw error;
    } else {
      this._useSession(body);
    }
    return this.session;
  }

  // ── the stream ──

  _open() {
    if (this._stopped) return;
    if (this._expiresInMs() <= 0) {
      // An expired token is refused at the handshake: refresh first (or renew through the back end).
      this.refresh().then(() => this._open(), () => this._reconnectLater());
      return;
    }
    const url = new URL(this.session.streamUrl);
    if (this.watermark) url.searchParams.set("after", this.watermark);
    this._setStatus(this._attempt ? "reconnecting" : "connecting");
    const socket = new WebSocket(url);
    this._socket = socket;
    socket.onopen = () => {
      this._attempt = 0;
      this._setStatus("open");
      this._clear("ping");
      this._timers.ping = setInterval(() => this._ping(socket), this.options.pingSeconds * 1000);
    };
    socket.onmessage = (event) => {
      this._frames = this._frames.then(() => this._frame(event.data)).catch((error) => this._emit("error", error));
    };
    socket.onclose = () => {
      if (this._socket !== socket) return;
      this._socket = null;
      this._clear("ping");
      this._reconnectLater();
    };
  }

  _reconnectLater() {
    if (this._stopped) return;
    this._attempt++;
    this._setStatus("reconnecting");
    this._clear("reconnect");
    this._timers.reconnect = setTimeout(() => this._open(), backoff(this._attempt, this.options));
  }

  _ping(socket) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ action: "ping" }));
  }

  async _frame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return this._emit("error", new Error("the stream sent a frame that is not JSON"));
    }
    if (frame.event === "pong") return;
    if (frame.event === "error") return this._emit("error", new RelayError(400, frame));
    if (frame.event === "too-large") {
      // Over the stream's frame limit: read that one response over HTTP.
      const conversation = encodeURIComponent(this.conversationId);
      const query = new URLSearchParams({ after: frame.after, limit: "1" });
      const response = await this._call("GET", `/conversations/${conversation}/responses?${query}`);
      if (!response.ok) throw new RelayError(response.status, await response.json().catch(() => ({})));
      const [item] = (await response.json()).responses;
      frame = { ...frame, response: item };
    } else if (frame.event !== "response") {
      return;
    }
    this.watermark = frame.watermark;
    if (this._seen.has(frame.id)) return; // a repeat around the moment of connection
    this._seen.add(frame.id);
    if (this._seen.size > this.options.seenIds) this._seen.delete(this._seen.values().next().value);
    this._emit("response", { id: frame.id, watermark: frame.watermark, response: frame.response });
  }

  // ── the token ──

  _useSession(session) {
    this.session = session;
    this._scheduleRefresh();
    this._emit("session", session);
  }

  _expiresInMs() {
    return Date.parse(this.session.expiresAt) - Date.now();
  }

  _scheduleRefresh() {
    this._clear("refresh");
    if (this._stopped) return;
    const left = this._expiresInMs();
    const early = Math.min(this.options.refreshBeforeSeconds * 1000, left / 2);
    this._timers.refresh = setTimeout(
      () => this.refresh().catch(() => this._retryRefresh()),
      Math.max(0, left - early),
    );
  }

  _retryRefresh() {
    if (this._stopped || this._expiresInMs() <= 0) return; // the next connection refreshes first
    this._clear("refresh");
    this._timers.refresh = setTimeout(() => this.refresh().catch(() => this._retryRefresh()), 5000);
  }

  _expire() {
    this.stop();
    this._setStatus("expired"); // the page's back end must mint a new token: call start() with a new session
  }

  // ── plumbing ──

  // The browser tells a page only "failed to fetch" when it withholds an answer for want of CORS. The module itself
  // is served to any origin: when it can still be fetched, the relay is up and refuses this page's origin.
  async _refusesThisOrigin() {
    try {
      return (await fetch(`${this.apiUrl}/relay-chat.js`, { cache: "no-store" })).ok;
    } catch {
      return false;
    }
  }

  _call(method, path, body) {
    const init = { method, headers: { authorization: `Bearer ${this.session.token}` } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(this.apiUrl + path, init);
  }

  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this._emit("status", status);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _clear(name) {
    clearTimeout(this._timers[name]);
    clearInterval(this._timers[name]);
    delete this._timers[name];
  }
}

function backoff(attempt, options) {
  const ceiling = Math.min(options.reconnectMaxMs, options.reconnectMinMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2); // jittered, so reconnecting pages do not come back together
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function newId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
