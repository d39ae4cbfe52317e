// Validates prometheus-operator objects against the operator's published CRD schemas
// (@kubernetes-models/prometheus-operator, pinned in package-lock.json).
// Reads a JSON array of objects on stdin; prints one line per object:
//   "ok <kind>/<name>" or "error <kind>/<name>: <what the schema refused>"
// and exits 1 when any object was refused or its kind is unknown.
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as v1alpha1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1";
import * as v1beta1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1beta1";

const versions = {
  "monitoring.coreos.com/v1": v1,
  "monitoring.coreos.com/v1alpha1": v1alpha1,
  "monitoring.coreos.com/v1beta1": v1beta1,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const obj of JSON.parse(input)) {
  const what = `${obj.kind}/${obj.metadata?.name}`;
  const Model = versions[obj.apiVersion]?.[obj.kind];
  if (!Model) {
    console.log(`error ${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${what}`);
  } catch (err) {
    console.log(`error ${what}: ${String(err.message ?? err).replace(/\s+/g, " ")}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
