// Runs an agent through eventsd with the official client's HttpAgent, as an AG-UI front end
// does: two threads of one user at the same time. Usage: node httpagent.mjs BASE_URL TOKEN AGENT
// Prints one JSON object: each thread's messages after its run, and every console warning or
// error the client printed. Exits 1 if a run fails.
import { HttpAgent } from "@ag-ui/client";

const [base, token, agent] = process.argv.slice(2);
const complaints = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => complaints.push(`${level}: ${args.map(String).join(" ")}`);
}

async function run(threadId, text) {
  const client = new HttpAgent({
    url: `${base}/api/v1/agui/agents/${agent}/run`,
    headers: { Authorization: `Bearer ${token}` },
    threadId,
    initialMessages: [{ id: `u-${threadId}`, role: "user", content: text }],
  });
  await client.runAgent({ runId: `r-${threadId}` });
  return { threadId, messages: client.messages };
}

try {
  const threads = await Promise.all([run("t1", "hello from one"), run("t2", "hello from two")]);
  process.stdout.write(JSON.stringify({ threads, complaints }) + "\n");
} catch (err) {
  process.stderr.write(`run failed: ${err?.stack ?? err}\n${complaints.join("\n")}\n`);
  process.exit(1);
}
