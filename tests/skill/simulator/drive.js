// Drive a skill endpoint with bespoken's virtual-alexa, from an interaction model.
// stdin: {"model": path, "locale": "en-US", "url": "http://127.0.0.1:PORT/alexa",
//         "applicationId": "...", "accessToken": "..." | null, "apl": "1.4" | null,
//         "apiEndpoint": "http://127.0.0.1:PORT" | null,
//         "turns": ["launch" | "intent:NAME" | "exit" | "confirm:yes" | "confirm:no" | an utterance, ...]}
// "confirm:yes" / "confirm:no" answer a Dialog.ConfirmIntent as Alexa does: the intent being
// confirmed comes back, with the slots of its dialog, and confirmationStatus CONFIRMED or DENIED
// (virtual-alexa turns a spoken "yes" into AMAZON.YesIntent instead). Any other turn starts afresh:
// a new utterance is a new dialog, not the slots of the last one (virtual-alexa keeps them for the
// session).
// stdout: one JSON list, per turn {"turn", "request", "response"} or {"turn", "error"}.
"use strict";
const va = require("virtual-alexa");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const alexa = va.VirtualAlexa.Builder()
    .interactionModelFile(spec.model)
    .locale(spec.locale)
    .applicationID(spec.applicationId)
    .skillURL(spec.url)
    .create();
  if (spec.accessToken) alexa.context().setAccessToken(spec.accessToken);
  let sent = null;
  alexa.filter((request) => {
    const system = request.context.System;
    if (spec.apiEndpoint) system.apiEndpoint = spec.apiEndpoint;
    if (spec.apl) {
      system.device.supportedInterfaces["Alexa.Presentation.APL"] = {runtime: {maxVersion: spec.apl}};
    }
    sent = JSON.parse(JSON.stringify(request));
  });
  const results = [];
  for (const turn of spec.turns) {
    sent = null;
    try {
      let response;
      if (turn.startsWith("confirm:")) {
        const dialog = alexa.dialogManager();
        const confirming = dialog._dialogIntent && dialog._dialogIntent.name;
        if (!confirming) throw new Error("no intent is being confirmed");
        const status = turn === "confirm:yes" ? "CONFIRMED" : "DENIED";
        response = await alexa.request().intent(confirming).intentStatus(status).send();
        results.push({turn, request: sent, response: response ? JSON.parse(JSON.stringify(response)) : null});
        continue;
      }
      alexa.dialogManager().reset();
      if (turn === "launch") response = await alexa.launch();
      else if (turn.startsWith("intent:")) response = await alexa.intend(turn.slice(7));
      else response = await alexa.utter(turn);
      results.push({turn, request: sent, response: response ? JSON.parse(JSON.stringify(response)) : null});
    } catch (error) {
      results.push({turn, request: sent, error: String(error && error.message || error)});
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => { console.error(error); process.exit(1); });
