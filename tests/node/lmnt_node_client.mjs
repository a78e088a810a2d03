// Drive lmnt-node (the official TypeScript SDK) against an LMNT server; print a JSON report.
//
// Run by tests/test_clients_node.py:  node lmnt_node_client.mjs SAMPLE_WAV
// Configured as its docs say: LMNT_BASE_URL and LMNT_API_KEY in the environment for the main
// client; the constructor's baseURL/apiKey options for a second client with a wrong key.
// Audio goes out as base64 so the Python test decodes it with PyAV.
import fs from 'node:fs';
import Lmnt from 'lmnt-node';

const b64 = (data) => Buffer.from(data).toString('base64');

async function session(client) {
  const speech = client.speech.sessions.create({ voice: 'leah', format: 'mp3', return_timestamps: true });
  speech.sendText('Hello from lmnt node. ');
  speech.sendText('This part is flushed');
  const flush = speech.sendFlush();
  let reset = null;
  const audio = [];
  const events = [];
  for await (const message of speech) {
    if (message.type === 'audio') {
      audio.push(Buffer.from(message.audio));
      events.push({ type: 'audio' });
    } else {
      events.push(message);
    }
    if (message.type === 'flush_complete' && reset === null) {
      // The flushed turn has been spoken; a reset now drops only what follows it
      // (a reset cancels everything not yet spoken, flushed or not: barge-in).
      speech.sendText('and this part is reset away');
      reset = speech.sendReset();
      speech.sendText('Goodbye.');
      speech.sendFinish();
    }
  }
  speech.close();
  return { flush, reset, events, audio: b64(Buffer.concat(audio)) };
}

async function rest(client, sample) {
  const bytes = await (await client.speech.generate({ text: 'Bytes from node.', voice: 'lily', format: 'wav' })).arrayBuffer();
  const detailed = await client.speech.generateDetailed({ text: 'Details from node.', voice: 'lily', return_timestamps: true });
  const voice = await client.voices.create({ name: 'Node voice', file: fs.createReadStream(sample), tags: ['node'] });
  const deleted = await client.voices.delete(voice.id);
  const account = await client.accounts.retrieve();
  return { wav: b64(bytes), detailed: { audio: detailed.audio, timestamps: detailed.timestamps }, voice, deleted, account };
}

async function wrongKey(baseURL) {
  const client = new Lmnt({ baseURL, apiKey: 'not-the-key', maxRetries: 0 });
  try {
    await client.accounts.retrieve();
    return null;
  } catch (err) {
    return { class: err.constructor.name, status: err.status, error: err.error };
  }
}

const client = new Lmnt();
const report = {
  session: await session(client),
  rest: await rest(client, process.argv[2]),
  wrong_key: await wrongKey(process.env.LMNT_BASE_URL),
};
console.log(JSON.stringify(report));
