"""Reproduce Tally's final tally of a poll from the votes table with PySpark.

The Spark Cassandra connector reads `votes` the way it reads any table: the
token ring is split at the cluster's token ranges into Spark partitions, each
read by a paged range query (`token(poll_id, voter_id) > ? AND <= ?`) on a
replica of that range. Only poll_id and option_ids are selected; voter ids,
IP and user agent never leave Cassandra.

    python final_tally.py --keyspace tally --poll <poll_id> [--host 127.0.0.1] [--out tally.json]

Prints one JSON document: {"poll_id", "total_votes", "options": {id: votes}},
counted like `GET /v1/polls/{id}/results?tally=final`: total_votes counts
ballots (rows), an option's votes count the ballots that chose it. That is
the final tally of plurality and approval polls only: on ranked and Schulze
polls tally=final counts first preferences (option_ids[0]) and on score polls
the ballots that scored each option, with their scores in the `scores` column
(see docs/architecture.md, "Counting methods").
"""
import argparse
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

CONNECTOR = "com.datastax.spark:spark-cassandra-connector_2.12:3.5.1"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keyspace", default="tally")
    ap.add_argument("--poll", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", default="9042")
    # The connector's own default is LOCAL_ONE; Tally's analysts read at
    # LOCAL_QUORUM so that every acknowledged vote is seen.
    ap.add_argument("--consistency", default="LOCAL_QUORUM")
    # Spark's launcher (Ivy resolving the connector) prints to stdout too.
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("--split-size-mb", default="64", help="connector input split size (Spark partition per ~N MiB)")
    args = ap.parse_args()

    spark = (
        SparkSession.builder.appName("tally-final-tally")
        .master("local[2]")
        .config("spark.jars.packages", CONNECTOR)
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.cassandra.connection.host", args.host)
        .config("spark.cassandra.connection.port", args.port)
        .config("spark.cassandra.input.consistency.level", args.consistency)
        .config("spark.cassandra.input.split.sizeInMB", args.split_size_mb)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")

    votes = (
        spark.read.format("org.apache.spark.sql.cassandra")
        .options(keyspace=args.keyspace, table="votes")
        .load()
        .select("poll_id", "option_ids")
        # poll_id alone is not the partition key: this is a full token-range
        # scan, filtered in Spark. A job over many polls drops this filter
        # and groups by poll_id as well.
        .where(F.col("poll_id") == args.poll)
    )
    ballots = votes.count()
    per_option = (
        votes.select(F.explode(F.array_distinct("option_ids")).alias("option_id"))
        .groupBy("option_id")
        .count()
        .collect()
    )
    out = {
        "poll_id": args.poll,
        "total_votes": ballots,
        "options": {str(r["option_id"]): r["count"] for r in per_option},
        "partitions_read": votes.rdd.getNumPartitions(),
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, sort_keys=True)
    else:
        json.dump(out, sys.stdout, sort_keys=True)
        print()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
