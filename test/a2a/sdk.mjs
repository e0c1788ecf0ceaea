// Drives eventsd's A2A endpoints with the official client of @a2a-js/sdk, against the example
// agent. Reads {url, token, otherToken, agent} as JSON on stdin and prints what it saw as JSON.
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, DefaultAgentCardResolver } from '@a2a-js/sdk/client';
import { Role, StreamResponse, Task } from '@a2a-js/sdk';

const input = JSON.parse(await new Promise((resolve) => {
  let s = '';
  process.stdin.on('data', (d) => { s += d; }).on('end', () => resolve(s));
}));

// client is an SDK client of the agent that sends token.
async function client(token) {
  const authFetch = (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  };
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl: authFetch }),
  }));
  return factory.createFromUrl(`${input.url}/api/v1/a2a/${input.agent}/.well-known/agent-card.json`, '');
}

const message = (text, taskId) => ({
  messageId: randomUUID(), role: Role.ROLE_USER, taskId: taskId ?? '',
  parts: [{ content: { $case: 'text', value: text } }],
});

// describe names a stream response as the Go test compares them: "task <state>",
// "status <state>", "artifact <text>".
function describe(ev) {
  const json = StreamResponse.toJSON(ev);
  if (json.task) return `task ${json.task.status.state}`;
  if (json.statusUpdate) return `status ${json.statusUpdate.status.state}`;
  if (json.artifactUpdate) return `artifact ${json.artifactUpdate.artifact.parts.map((p) => p.text).join('')}`;
  return `other ${JSON.stringify(json)}`;
}

// drain reads a stream to its end; onEvent sees each response as it comes.
async function drain(stream, onEvent = () => {}) {
  const seen = [];
  for await (const ev of stream) {
    seen.push(describe(ev));
    await onEvent(ev, seen);
  }
  return seen;
}

// failure is how a call failed: the typed error's name and code, or "none".
async function failure(fn) {
  try {
    await fn();
    return 'none';
  } catch (e) {
    const err = e.cause ?? e;
    return `${err.name} ${err.envelopeCode ?? err.code ?? ''}`.trim();
  }
}

const out = {};
const alice = await client(input.token);
const card = alice.agentCard ?? (await alice.getAgentCard?.());
out.card = card ? { name: card.name, streaming: card.capabilities?.streaming } : null;

// A streamed message, to completion.
let taskId;
out.streamed = await drain(alice.sendMessageStream({ message: message('hello there') }), (ev) => {
  if (ev.payload?.$case === 'task') taskId = ev.payload.value.id;
});
const got = Task.toJSON(await alice.getTask({ id: taskId, historyLength: 10 }));
out.got = { state: got.status.state, artifacts: (got.artifacts ?? []).map((a) => a.parts.map((p) => p.text).join('')), history: (got.history ?? []).length };

// Subscribing to a running task mid-way: the task as it is first, then the rest.
const words = Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ');
let subscribed = null;
out.long = await drain(alice.sendMessageStream({ message: message(words) }), (ev, seen) => {
  if (ev.payload?.$case === 'task') taskId = ev.payload.value.id;
  if (subscribed === null && seen.length === 4) { // submitted, working, two chunks
    subscribed = drain(alice.resubscribeTask({ id: taskId }));
  }
});
out.subscribed = await subscribed;
out.subscribeDone = await failure(() => drain(alice.resubscribeTask({ id: taskId })));

// Unknown tasks, and another user's.
out.getUnknown = await failure(() => alice.getTask({ id: 'no-such-task' }));
out.subscribeUnknown = await failure(() => drain(alice.resubscribeTask({ id: 'no-such-task' })));
const bob = await client(input.otherToken);
out.getOthers = await failure(() => bob.getTask({ id: taskId }));

// A task that asks for input, continued by the user's answer.
let asking;
out.asked = await drain(alice.sendMessageStream({ message: message('?') }), (ev) => {
  if (ev.payload?.$case === 'task') asking = ev.payload.value.id;
});
out.answered = await drain(alice.sendMessageStream({ message: message('more', asking) }));

// A unary message, and a cancelled task.
const sent = await alice.sendMessage({ message: message('one two') });
out.sent = sent.status ? Task.toJSON(sent).status.state : `other ${JSON.stringify(sent)}`; // a Task, or a Message
let cancelled;
out.cancelled = await drain(alice.sendMessageStream({ message: message(words) }), async (ev, seen) => {
  if (ev.payload?.$case === 'task') taskId = ev.payload.value.id;
  if (seen.length === 3) cancelled = Task.toJSON(await alice.cancelTask({ id: taskId })).status.state;
});
out.cancelState = cancelled;

console.log(JSON.stringify(out));
