// models.list walked with the SDK's auto-pagination (small pages: after_id cursors), then
// models.retrieve of one id.
import { makeClient, print } from './common.mjs';

const client = makeClient();
const listed = [];
for await (const model of client.models.list({ limit: 5 })) {
  listed.push(model);
}
const one = await client.models.retrieve('claude-haiku-4-5');
print({ listed, one });
