// Follows a thread of eventsd with EventsdAgent (clients/agui) through @ag-ui/client's own
// pipeline: a client that joins mid-run, one whose connection drops mid-message and resumes by
// id, one whose connection drops within the prelude, and one that joins after the run; and, as the reference, a client fed every event of the
// thread. Usage: node thread.mjs CONFIG_JSON, with {base, token, thread, all, cutAfterDelta}.
// Prints "joined" once the first two follow the run, then one JSON object of the results and
// every warning or error the clients printed.
import { AbstractAgent } from "@ag-ui/client";
import { from } from "rxjs";
import { EventsdAgent } from "../../clients/agui/eventsd-agent.mjs";

const config = JSON.parse(process.argv[2]);
const complaints = [];
for (const level of ["warn", "error"]) console[level] = (...a) => complaints.push(`${level}: ${a.map(String).join(" ")}`);

function agent(fetchFn) {
  return new EventsdAgent({
    url: `${config.base}/api/v1/agui/agents/echo/run`,
    threads: `${config.base}/api/v1/agui/threads`,
    headers: { Authorization: `Bearer ${config.token}` },
    threadId: config.thread,
    retryDelay: 20,
    ...(fetchFn && { fetch: fetchFn }),
  });
}

// cutting is a fetch whose first answer ends, as a dropped connection does, right after the
// frame whose data holds marker.
function cutting(marker) {
  let cut = false;
  return async (url, init) => {
    const res = await fetch(url, init);
    if (cut) return res;
    cut = true;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let text = "";
    const body = new ReadableStream({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        text += decoder.decode(value, { stream: true });
        const at = text.indexOf(marker);
        if (at < 0) {
          controller.enqueue(encoder.encode(text.slice(0, text.lastIndexOf("\n\n") + 2)));
          text = text.slice(text.lastIndexOf("\n\n") + 2);
          return;
        }
        const end = text.indexOf("\n\n", at) + 2;
        controller.enqueue(encoder.encode(text.slice(0, end)));
        reader.cancel().catch(() => {});
        controller.error(new TypeError("connection dropped"));
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
}

class Replay extends AbstractAgent {
  constructor(events) { super({ threadId: config.thread }); this.events = events; }
  run() { return from(this.events); }
}

const result = (a) => ({ messages: a.messages, state: a.state });
const joined = agent();
const resumed = agent(cutting(`"delta":"${config.cutAfterDelta}"`));
const cutInPrelude = agent(cutting(`"type":"MESSAGES_SNAPSHOT"`));
let following = 0;
const signal = () => { if (++following === 3) process.stdout.write("joined\n"); };
const once = () => { let done = false; return { onEvent: () => { if (!done) { done = true; signal(); } } }; };
await Promise.all([joined.connectAgent({}, once()), resumed.connectAgent({}, once()), cutInPrelude.connectAgent({}, once())]);
const after = agent();
await after.connectAgent();
const whole = new Replay(config.all);
await whole.runAgent();
process.stdout.write(JSON.stringify({
  joined: result(joined),
  resumed: { ...result(resumed), reconnects: resumed.reconnects },
  cutInPrelude: { ...result(cutInPrelude), reconnects: cutInPrelude.reconnects },
  after: result(after),
  whole: result(whole),
  complaints,
}) + "\n");
