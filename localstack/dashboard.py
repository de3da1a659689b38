"""Generates the `# --- Operations: dashboard, alarms ---` block of infra/sam-template.yaml
from the template's functions and queues: run it after adding a function or a queue, and
replace the block with its output (localstack/tests/dashboard.rs fails until every function,
queue and stream consumer has its widgets and alarms).

    localstack/.venv/bin/python localstack/dashboard.py infra/sam-template.yaml > /tmp/block.yaml
"""
import json, sys, yaml

class L(yaml.SafeLoader): pass
def tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode): return {"!" + suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode): return {"!" + suffix: loader.construct_sequence(node, deep=True)}
    return {"!" + suffix: loader.construct_mapping(node, deep=True)}
L.add_multi_constructor("!", tag)
t = yaml.load(open(sys.argv[1]), Loader=L)
R = t["Resources"]
functions = [k for k, v in R.items() if v["Type"] == "AWS::Serverless::Function"]
def events(f): return (R[f]["Properties"].get("Events") or {}).values()
http_fns = [f for f in functions if any(e["Type"] == "HttpApi" for e in events(f))]
stream_fns = [f for f in functions if any(e["Type"] == "DynamoDB" for e in events(f))]
queues = [k for k, v in R.items() if v["Type"] == "AWS::SQS::Queue"]
dlq_of = {}
for q in queues:
    rp = (R[q].get("Properties") or {}).get("RedrivePolicy")
    if rp:
        arn = rp["deadLetterTargetArn"]
        dlq_of[q] = arn["!GetAtt"].split(".")[0]
source_queues = list(dlq_of)
dlqs = list(dlq_of.values())
# Queues that receive failures of other event sources (on-failure destinations).
destinations = []
for f in functions:
    for e in events(f):
        d = (((e.get("Properties") or {}).get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if d: destinations.append(d["!GetAtt"].split(".")[0])
failure_queues = dlqs + [d for d in destinations if d not in dlqs]
assert all(q in queues for q in failure_queues)
worker = "WorkerFunction"
ws_fns = [f for f in functions if f in ("WsBroadcastFunction", "WorkerFunction")]
NS = "DocumentWorkflowChain"
KINDS = ["throttled", "timeout", "upstream", "invalid_request", "content_filtered", "unauthorized", "cancelled", "internal"]
def short(f): return f.removesuffix("Function")
def qname(q): return "${%s.QueueName}" % q

widgets = []
pos = {"x": 0, "y": 0}
def header(text):
    if pos["x"] != 0:
        pos["x"] = 0; pos["y"] += 6
    widgets.append({"type": "text", "x": 0, "y": pos["y"], "width": 24, "height": 1, "properties": {"markdown": "## " + text}})
    pos["y"] += 1
def metric(title, metrics, stat="Sum", period=60, extra=None):
    props = {"title": title, "view": "timeSeries", "stacked": False, "region": "${AWS::Region}", "stat": stat, "period": period, "metrics": metrics}
    if extra: props.update(extra)
    widgets.append({"type": "metric", "x": pos["x"], "y": pos["y"], "width": 8, "height": 6, "properties": props})
    pos["x"] += 8
    if pos["x"] >= 24:
        pos["x"] = 0; pos["y"] += 6

header("API")
metric("API: requests by status class", [[NS, "Requests", "Service", "${%s}" % f, "StatusClass", c, {"label": "%s %s" % (short(f), c)}] for f in http_fns for c in ["2xx", "3xx", "4xx", "5xx"]])
metric("API: latency p50 / p95 / p99 (ms)", [[NS, "RequestLatency", "Service", "${%s}" % f, {"stat": p, "label": "%s %s" % (short(f), p)}] for f in http_fns for p in ["p50", "p95", "p99"]], stat="p99")
ids = []
ms = []
for i, f in enumerate(http_fns):
    ms.append([NS, "Requests", "Service", "${%s}" % f, {"id": "r%d" % i, "visible": False}])
    ms.append([NS, "ServerErrors", "Service", "${%s}" % f, {"id": "e%d" % i, "visible": False}])
req = "+".join("FILL(r%d,0)" % i for i in range(len(http_fns)))
err = "+".join("FILL(e%d,0)" % i for i in range(len(http_fns)))
ms.insert(0, [{"expression": "IF((%s) > 0, 100 * (%s) / (%s), 0)" % (req, err, req), "label": "5xx rate (%)", "id": "rate"}])
metric("API: 5xx rate (%)", ms)

header("Runs and generation")
metric("Runs: steps", [[NS, m, "Service", "${%s}" % worker, {"label": m}] for m in ["StepsSucceeded", "StepRetries", "StepsFailed"]])
metric("Runs: generation latency (ms)", [[NS, "GenerationLatency", "Service", "${%s}" % worker, {"stat": p, "label": p}] for p in ["p50", "p95", "p99"]], stat="p99")
metric("Runs: tokens", [[NS, m, "Service", "${%s}" % worker, {"label": m}] for m in ["InputTokens", "OutputTokens"]])
metric("Runs: failed attempts by class", [[NS, "StepAttemptFailures", "Service", "${%s}" % worker, "ErrorKind", k, {"label": k}] for k in KINDS])
metric("Runs: generation failure rate (%)", [
    [{"expression": "IF(FILL(g,0) > 0, 100 * FILL(f,0) / g, 0)", "label": "generation failure rate (%)", "id": "rate"}],
    [NS, "Generations", "Service", "${%s}" % worker, {"id": "g", "visible": False}],
    [NS, "GenerationFailures", "Service", "${%s}" % worker, {"id": "f", "visible": False}],
], period=300)

header("Queues and dead-letter queues")
metric("Queues: step messages visible", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", qname(q), {"label": q}] for q in source_queues], stat="Maximum", period=300)
metric("Queues: oldest step message age (s)", [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", qname(q), {"label": q}] for q in source_queues], stat="Maximum", period=300)
metric("Queues: dead-letter messages visible", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", qname(q), {"label": q}] for q in failure_queues], stat="Maximum", period=300)
metric("Queues: oldest dead-letter message age (s)", [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", qname(q), {"label": q}] for q in failure_queues], stat="Maximum", period=300)

header("WebSockets")
metric("WebSockets: fan-out size (connections per message)", [[NS, "FanOutSize", "Service", "${%s}" % f, {"stat": s, "label": "%s %s" % (short(f), s)}] for f in ws_fns for s in ["Average", "p99", "Maximum"]], stat="Average")
metric("WebSockets: frames sent", [[NS, "FramesSent", "Service", "${%s}" % f, {"label": short(f)}] for f in ws_fns])
metric("WebSockets: gone connections, throttled and failed posts", [[NS, m, "Service", "${%s}" % f, {"label": "%s %s" % (short(f), m)}] for f in ws_fns for m in ["ConnectionsGone", "PostsThrottled", "PostsFailed"]])

header("Lambda")
metric("Lambda: errors", [["AWS/Lambda", "Errors", "FunctionName", "${%s}" % f, {"label": short(f)}] for f in functions])
metric("Lambda: throttles", [["AWS/Lambda", "Throttles", "FunctionName", "${%s}" % f, {"label": short(f)}] for f in functions])
metric("Lambda: duration p99 (ms)", [["AWS/Lambda", "Duration", "FunctionName", "${%s}" % f, {"label": short(f)}] for f in functions], stat="p99")

header("DynamoDB and the stream")
ops = ["GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"]
metric("DynamoDB: throttled requests and user errors", 
    [["AWS/DynamoDB", "ThrottledRequests", "TableName", "${WorkflowTable}", "Operation", o, {"label": "throttled " + o}] for o in ops]
    + [["AWS/DynamoDB", "ReadThrottleEvents", "TableName", "${WorkflowTable}", {"label": "read throttle events"}],
       ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", "${WorkflowTable}", {"label": "write throttle events"}],
       ["AWS/DynamoDB", "UserErrors", {"label": "user errors (account, region)"}]], period=300)
metric("Stream: iterator age of its consumers (ms)", [["AWS/Lambda", "IteratorAge", "FunctionName", "${%s}" % f, {"label": short(f)}] for f in stream_fns], stat="Maximum")

body = "{\"widgets\": [\n" + ",\n".join(json.dumps(w, separators=(", ", ": ")) for w in widgets) + "\n]}"
json.loads(body.replace("${", "").replace("}", "}"))  # sanity (after naive substitution below)

out = []
w = out.append
w("  # --- Operations: dashboard, alarms ---")
w("  # Metrics come from the functions' EMF log lines (shared/src/emf.rs: namespace")
w("  # DocumentWorkflowChain, dimension Service = the function's name) and from AWS/Lambda, AWS/SQS")
w("  # and AWS/DynamoDB. Every alarm notifies AlarmTopic (e-mailed to AlarmEmail when it is set).")
w("  AlarmTopic:")
w("    Type: AWS::SNS::Topic")
w("    Properties:")
w("      DisplayName: !Sub \"${AWS::StackName} alarms\"")
w("")
w("  AlarmEmailSubscription:")
w("    Type: AWS::SNS::Subscription")
w("    Condition: HasAlarmEmail")
w("    Properties:")
w("      TopicArn: !Ref AlarmTopic")
w("      Protocol: email")
w("      Endpoint: !Ref AlarmEmail")
w("")
w("  OperationsDashboard:")
w("    Type: AWS::CloudWatch::Dashboard")
w("    Properties:")
w("      DashboardName: !Sub \"${AWS::StackName}-operations\"")
w("      DashboardBody: !Sub |")
for line in body.split("\n"):
    w("        " + line)
w("")

def dims(d): return "[" + ", ".join("{Name: %s, Value: %s}" % (k, v) for k, v in d) + "]"
def alarm(name, desc, props):
    w("  %s:" % name)
    w("    Type: AWS::CloudWatch::Alarm")
    w("    Properties:")
    w("      AlarmDescription: %s" % json.dumps(desc))
    w("      AlarmActions: [!Ref AlarmTopic]")
    w("      OKActions: [!Ref AlarmTopic]")
    w("      TreatMissingData: notBreaching")
    for line in props:
        w("      " + line)
    w("")

# API 5xx rate
lines = ["ComparisonOperator: GreaterThanThreshold", "Threshold: 5", "EvaluationPeriods: 5", "DatapointsToAlarm: 3", "Metrics:"]
reqs = "+".join("FILL(r%d,0)" % i for i in range(len(http_fns)))
errs = "+".join("FILL(e%d,0)" % i for i in range(len(http_fns)))
lines += ["  - Id: rate", "    Label: API 5xx rate (%)",
          "    Expression: \"IF((%s) >= 10, 100 * (%s) / (%s), 0)\"" % (reqs, errs, reqs), "    ReturnData: true"]
for i, f in enumerate(http_fns):
    for mid, m in (("r%d" % i, "Requests"), ("e%d" % i, "ServerErrors")):
        lines += ["  - Id: %s" % mid, "    ReturnData: false", "    MetricStat:", "      Stat: Sum", "      Period: 60",
                  "      Metric:", "        Namespace: %s" % NS, "        MetricName: %s" % m,
                  "        Dimensions: [{Name: Service, Value: !Ref %s}]" % f]
alarm("ApiServerErrorRateAlarm", "More than 5% of API requests answered 5xx (3 of 5 minutes, at least 10 requests a minute).", lines)

for f in http_fns:
    thr = 2000 if f in ("ApiAuthFunction", "ApiAnalyticsFunction") else 1000
    alarm("%sLatencyP99Alarm" % short(f), "p99 latency of %s over %d ms (3 of 5 minutes)." % (short(f), thr), [
        "Namespace: %s" % NS, "MetricName: RequestLatency", "Dimensions: [{Name: Service, Value: !Ref %s}]" % f,
        "ExtendedStatistic: p99", "Period: 60", "EvaluationPeriods: 5", "DatapointsToAlarm: 3",
        "Threshold: %d" % thr, "ComparisonOperator: GreaterThanThreshold"])

for q in failure_queues:
    alarm("%sNotEmptyAlarm" % q, "%s holds messages: inspect and redrive them." % q, [
        "Namespace: AWS/SQS", "MetricName: ApproximateNumberOfMessagesVisible",
        "Dimensions: [{Name: QueueName, Value: !GetAtt %s.QueueName}]" % q,
        "Statistic: Maximum", "Period: 300", "EvaluationPeriods: 1", "Threshold: 0", "ComparisonOperator: GreaterThanThreshold"])

for q in source_queues:
    alarm("%sOldestMessageAlarm" % q, "The oldest message of %s waited over 15 minutes (two 5-minute periods)." % q, [
        "Namespace: AWS/SQS", "MetricName: ApproximateAgeOfOldestMessage",
        "Dimensions: [{Name: QueueName, Value: !GetAtt %s.QueueName}]" % q,
        "Statistic: Maximum", "Period: 300", "EvaluationPeriods: 2", "Threshold: 900", "ComparisonOperator: GreaterThanThreshold"])

lines = ["ComparisonOperator: GreaterThanOrEqualToThreshold", "Threshold: 5", "EvaluationPeriods: 1", "Metrics:",
         "  - Id: throttles", "    Label: Lambda throttles, all functions",
         "    Expression: \"%s\"" % "+".join("FILL(t%d,0)" % i for i in range(len(functions))), "    ReturnData: true"]
for i, f in enumerate(functions):
    lines += ["  - Id: t%d" % i, "    ReturnData: false", "    MetricStat:", "      Stat: Sum", "      Period: 300",
              "      Metric:", "        Namespace: AWS/Lambda", "        MetricName: Throttles",
              "        Dimensions: [{Name: FunctionName, Value: !Ref %s}]" % f]
alarm("LambdaThrottlesAlarm", "The functions were throttled 5 times or more in 5 minutes.", lines)

lines = ["ComparisonOperator: GreaterThanOrEqualToThreshold", "Threshold: 10", "EvaluationPeriods: 1", "Metrics:",
         "  - Id: throttles", "    Label: DynamoDB throttle events", "    Expression: \"FILL(rd,0)+FILL(wr,0)\"", "    ReturnData: true"]
for mid, m in (("rd", "ReadThrottleEvents"), ("wr", "WriteThrottleEvents")):
    lines += ["  - Id: %s" % mid, "    ReturnData: false", "    MetricStat:", "      Stat: Sum", "      Period: 300",
              "      Metric:", "        Namespace: AWS/DynamoDB", "        MetricName: %s" % m,
              "        Dimensions: [{Name: TableName, Value: !Ref WorkflowTable}]"]
alarm("DynamoDbThrottlesAlarm", "The table throttled 10 requests or more in 5 minutes.", lines)

for f in stream_fns:
    alarm("%sIteratorAgeAlarm" % short(f), "%s is over a minute behind the table's stream (3 minutes in a row)." % short(f), [
        "Namespace: AWS/Lambda", "MetricName: IteratorAge", "Dimensions: [{Name: FunctionName, Value: !Ref %s}]" % f,
        "Statistic: Maximum", "Period: 60", "EvaluationPeriods: 3", "Threshold: 60000", "ComparisonOperator: GreaterThanThreshold"])

lines = ["ComparisonOperator: GreaterThanThreshold", "Threshold: 25", "EvaluationPeriods: 3", "DatapointsToAlarm: 2", "Metrics:",
         "  - Id: rate", "    Label: generation failure rate (%)",
         "    Expression: \"IF(FILL(g,0) >= 5, 100 * FILL(f,0) / g, 0)\"", "    ReturnData: true"]
for mid, m in (("g", "Generations"), ("f", "GenerationFailures")):
    lines += ["  - Id: %s" % mid, "    ReturnData: false", "    MetricStat:", "      Stat: Sum", "      Period: 300",
              "      Metric:", "        Namespace: %s" % NS, "        MetricName: %s" % m,
              "        Dimensions: [{Name: Service, Value: !Ref %s}]" % worker]
alarm("GenerationFailureRateAlarm", "More than 25% of model calls failed (2 of 3 five-minute periods, at least 5 calls).", lines)

sys.stdout.write("\n".join(out).rstrip("\n") + "\n\n")
