// Reads an eventsd agui SSE stream the way an AG-UI client does and validates every event
// with the protocol's schemas. Usage: node conformance.mjs URL TOKEN COUNT [LAST_EVENT_ID]
// Prints one JSON line per event; exits 0 after COUNT valid events, 1 on the first failure.
import { runHttpRequest, parseSSEStream } from "@ag-ui/client";
import { EventSchema } from "@ag-ui/core/schemas";

const [url, token, count, lastEventId] = process.argv.slice(2);
const want = Number(count);
const controller = new AbortController();
let seen = 0;

const http$ = runHttpRequest(() =>
  fetch(url, {
    headers: { Authorization: `Bearer ${token}`, ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}) },
    signal: controller.signal,
  }),
);
const sub = parseSSEStream(http$).subscribe({
  next(data) {
    const result = EventSchema.safeParse(data);
    if (!result.success) {
      console.error(`invalid AG-UI event: ${JSON.stringify(data)}: ${result.error.message}`);
      process.exit(1);
    }
    console.log(JSON.stringify(result.data));
    if (++seen === want) {
      sub.unsubscribe();
      controller.abort();
      process.exit(0);
    }
  },
  error(err) {
    console.error(`stream error: ${err?.message ?? err}`);
    process.exit(1);
  },
  complete() {
    console.error(`stream ended after ${seen} of ${want} events`);
    process.exit(1);
  },
});
