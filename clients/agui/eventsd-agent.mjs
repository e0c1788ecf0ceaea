// EventsdAgent is @ag-ui/client's HttpAgent for eventsd: runAgent() starts a run as HttpAgent
// does (POST .../agui/agents/{agent}/run), and connectAgent() follows the agent's thread on
// eventsd's thread stream (GET .../agui/threads/{threadId}/stream) until the run in progress
// ends: a page that was refreshed mid-run, or a second tab, joins the run where it is, with the
// thread's messages and state. A dropped connection is resumed by id, without repeating
// anything to the client's pipeline.
//
//   import { EventsdAgent } from "./eventsd-agent.mjs";
//   const agent = new EventsdAgent({
//     url: "https://events.example.com/api/v1/agui/agents/echo/run",
//     threads: "https://events.example.com/api/v1/agui/threads",
//     headers: { Authorization: `Bearer ${token}` },
//     threadId,
//   });
//   await agent.connectAgent(); // joins the run in progress, if any, and returns when it ends
//
// Options beyond HttpAgent's: threads (the thread streams' base URL), retryDelay (ms before a
// reconnect, default 1000), maxRetries (reconnects in a row without an event, default 10).
import { HttpAgent } from "@ag-ui/client";
import { Observable } from "rxjs";

export class EventsdAgent extends HttpAgent {
  constructor(config) {
    super(config);
    this.threads = config.threads;
    this.retryDelay = config.retryDelay ?? 1000;
    this.maxRetries = config.maxRetries ?? 10;
    this.reconnects = 0;
  }

  // connect follows the thread stream: its prelude (the run in progress, or the thread's last
  // state as a completed run), then its events until a RUN_FINISHED or RUN_ERROR.
  connect(input) {
    return new Observable((subscriber) => {
      const controller = new AbortController();
      const follow = new ThreadFollower(this, input.threadId, subscriber, controller.signal);
      follow.run().catch((err) => subscriber.error(err));
      return () => controller.abort();
    });
  }

  clone() {
    const c = super.clone();
    Object.assign(c, { threads: this.threads, retryDelay: this.retryDelay, maxRetries: this.maxRetries, reconnects: 0 });
    return c;
  }
}

// ThreadFollower reads one thread stream for one connectAgent call, reconnecting by id.
class ThreadFollower {
  constructor(agent, threadId, subscriber, signal) {
    Object.assign(this, { agent, threadId, subscriber, signal });
    this.lastId = "";
    this.failures = 0;
  }

  async run() {
    for (;;) {
      const resumedAt = this.lastId;
      let done = false;
      try {
        done = await this.read(resumedAt);
      } catch (err) {
        if (this.signal.aborted) return;
        if (err.final) throw err;
      }
      if (done || this.signal.aborted) {
        this.subscriber.complete();
        return;
      }
      if (++this.failures > this.agent.maxRetries) {
        throw new Error(`thread stream ${this.threadId}: gave up after ${this.agent.maxRetries} reconnects`);
      }
      this.agent.reconnects++;
      await new Promise((resolve) => setTimeout(resolve, this.agent.retryDelay));
    }
  }

  // read reads the stream once, from resumedAt when set, and reports whether the run ended.
  async read(resumedAt) {
    const headers = { ...this.agent.headers, Accept: "text/event-stream" };
    if (resumedAt) headers["Last-Event-ID"] = resumedAt;
    const url = `${this.agent.threads}/${encodeURIComponent(this.threadId)}/stream`;
    const res = await this.agent.fetch(url, { headers, signal: this.signal });
    if (!res.ok) {
      const err = new Error(`thread stream ${this.threadId}: HTTP ${res.status}: ${await res.text()}`);
      err.final = res.status >= 400 && res.status < 500 && res.status !== 429;
      throw err;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    this.held = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return false;
      buffer += decoder.decode(value, { stream: true });
      const frames = buffer.split("\n\n");
      buffer = frames.pop();
      for (const frame of frames) {
        if (this.frame(frame, resumedAt)) {
          await reader.cancel().catch(() => {});
          return true;
        }
      }
    }
  }

  // frame takes one frame and reports whether it ended the run. A prelude's frames carry no id
  // but the last: they are held until it comes, so that a connection lost within a prelude
  // hands none of it to the pipeline. On a reconnect, a prelude that ends with the cursor it
  // resumed from re-opens what the pipeline has open already, and is dropped; one that ends
  // elsewhere (the cursor could not be honoured) cannot continue this pipeline.
  frame(frame, resumedAt) {
    let id = "";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith("id:")) id = line.slice(3).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length === 0) return false;
    const event = JSON.parse(data.join("\n"));
    if (!id) {
      this.held.push(event);
      return false;
    }
    let events = [...this.held, event];
    if (resumedAt && this.lastId === resumedAt) {
      if (id === resumedAt) events = [];
      else if (this.held.length > 0) {
        const err = new Error(`thread stream ${this.threadId}: cannot resume at ${resumedAt}; connect again`);
        err.final = true;
        throw err;
      }
    }
    this.held = [];
    if (id !== this.lastId) this.failures = 0; // progress: a resumed prelude alone is none
    this.lastId = id;
    for (const ev of events) {
      this.subscriber.next(ev);
      if (ev.type === "RUN_FINISHED" || ev.type === "RUN_ERROR") return true;
    }
    return false;
  }
}
