"""Compare the job's tally (argv[1], JSON) with the API's results document
(argv[2], JSON from GET /v1/polls/{id}/results?tally=final). Exit 1 on any
difference; options the job never saw must have 0 votes in the API."""
import json
import sys

job = json.load(open(sys.argv[1]))
api = json.load(open(sys.argv[2]))
problems = []
if job["total_votes"] != api["total_votes"]:
    problems.append(f"total_votes: job {job['total_votes']}, api {api['total_votes']}")
for opt in api["options"]:
    got = job["options"].get(opt["option_id"], 0)
    if got != opt["votes"]:
        problems.append(f"option {opt['option_id']} ({opt['label']}): job {got}, api {opt['votes']}")
unknown = set(job["options"]) - {o["option_id"] for o in api["options"]}
if unknown:
    problems.append(f"options the poll does not have: {sorted(unknown)}")
for p in problems:
    print("MISMATCH", p)
checks = 2 + len(api["options"])
print(f"analytics: {checks - len(problems)} passed, {len(problems)} failed")
sys.exit(1 if problems else 0)
