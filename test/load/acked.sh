# shellcheck shell=bash
# Clients of the chaos load whose calls are logged, and the check of that log
# against the books.  Sourced by test/scripts/crash_recovery.sh and
# test/scripts/failover.sh; the database needs test/load/setup.sql.
#
# A client makes the chaos load's calls (chaos.op, the same draws as
# test/load/chaos.sql) one transaction each, every call with its own
# idempotency key.  It writes the call to DIR/intents.CLIENT before sending it
# and to DIR/acks.CLIENT once the server has answered it: an acknowledged call
# is one whose commit the client saw.  A call whose connection fails is sent
# again with the same key, as a client that does not know whether its commit
# happened must do.
#
# Needs PGBIN.
ACKED_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# acked_client CLIENT TAG CONNINFO DIR: calls until the file DIR/stop exists,
# or, with ACKED_GIVE_UP=N, until N connection attempts in a row have failed
# (the call is then left unacknowledged).  Keeps one session (a psql reading
# a pipe) and opens another when it is lost.  Exits 1 on an error that is not
# a documented refusal (chaos.op lets those through) nor a lost connection.
acked_client() {
	local client=$1 tag=$2 conninfo=$3 dir=$4 i=0 k op n key tries line answer ended errors sqlstate
	local give_up=${ACKED_GIVE_UP:-0} pid="" to from rc
	local -
	set +e    # the exit codes here are looked at, not fatal
	RANDOM=$((BASHPID + client))
	trap '' PIPE    # a write to a session that is gone fails, as a lost connection
	mkfifo "$dir/to.$client" "$dir/from.$client"
	while [ ! -e "$dir/stop" ]; do
		i=$((i + 1)); k=$((1 + RANDOM % 1000)); op=$((1 + RANDOM % 130)); n=$((1 + RANDOM % 50))
		key="$tag-c$client-$i"
		echo "$key,$k,$op,$n,$client" >>"$dir/intents.$client"
		tries=0
		while :; do
			tries=$((tries + 1))
			if [ -z "$pid" ]; then
				"$PGBIN/psql" -X -q -A -t -d "$conninfo" <"$dir/to.$client" >"$dir/from.$client" 2>&1 &
				pid=$!
				exec {to}>"$dir/to.$client" {from}<"$dir/from.$client"
			fi
			answer="" ended=0 errors="" sqlstate=""
			if printf '%s\n%s\n' "SELECT chaos.op($k, $op, $n, $client, '$key');" '\echo @@end :SQLSTATE' 1>&"$to" 2>/dev/null; then
				while :; do
					IFS= read -r -t 120 line <&"$from"
					rc=$?
					[ $rc -ne 0 ] && break
					if [[ $line == @@end* ]]; then ended=1; sqlstate=${line#@@end}; sqlstate=${sqlstate# }; break; fi
					if [ -z "$answer" ] && [[ $line =~ ^[0-9A-Z]{5}( -?[0-9]+)?$ ]]; then
						answer=$line
					else
						errors+="$line"$'\n'
					fi
				done
				if [ $rc -gt 128 ]; then
					echo "client $client, call $key: no answer in 120 s" >&2
					return 1
				fi
			fi
			if [ $ended = 1 ] && [ "$sqlstate" = 00000 ] && [ -n "$answer" ]; then
				echo "$key,$answer,$tries,${EPOCHREALTIME/./}" >>"$dir/acks.$client"
				break
			fi
			# psql's SQLSTATE is empty for an error of the client (the
			# connection is gone); 08: connection exception; 57P01-57P03:
			# the server is shutting down, crashed, or not up yet
			if [ $ended = 1 ] && ! [[ $sqlstate == "" || $sqlstate == 08* || $sqlstate == 57P0[123] ]]; then
				printf 'client %s, call %s: %s, an error chaos.op does not expect:\n%s' "$client" "$key" "$sqlstate" "$errors" >&2
				return 1
			fi
			# no end mark (psql is gone) or a lost connection: a new session
			exec {to}>&- {from}<&-
			wait "$pid" 2>/dev/null
			pid=""
			if [ "$give_up" -gt 0 ] && [ $tries -ge "$give_up" ]; then return 0; fi
			[ -e "$dir/stop" ] && return 0
			sleep 0.05
		done
	done
	if [ -n "$pid" ]; then
		exec {to}>&- {from}<&-
		wait "$pid"
	fi
	return 0
}

# acked_check CONNINFO DIR [SINCE]: loads DIR's logs and checks them against
# the books on CONNINFO (the server after the crash or the failover):
#   lost      acknowledged successful keyed calls of which nothing is there
#   doubled   calls whose ledger rows come from more than one transaction
#   phantom   acknowledged refusals that left something
# then sends every acknowledged successful keyed call again (each must answer
# its first result and write no ledger row) and every unacknowledged call
# (each ends applied once or refused; doubled is counted again after), and
# runs verify().  expire and release expired take no key (repeating them is
# safe as it is) and are not sent again.  Calls acknowledged after being sent
# more than once are counted by whether their effect was written before SINCE
# (a timestamp: the failover) or by the retry.  Prints the figures, sets
# ACKED_FIGURES (name=value ...) and returns 1 when a check failed.
acked_check() {
	local conninfo=$1 dir=$2 since=${3:--infinity} out
	cat "$dir"/intents.[0-9]* >"$dir/intents.csv" 2>/dev/null || : >"$dir/intents.csv"
	cat "$dir"/acks.[0-9]* >"$dir/acks.csv" 2>/dev/null || : >"$dir/acks.csv"
	out=$("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$conninfo" -v since="$since" 2>&1 <<SQL
CREATE TEMP TABLE intents (call_key text PRIMARY KEY, k integer, op integer, n integer, client integer);
CREATE TEMP TABLE acks (call_key text PRIMARY KEY, answer text, tries integer, at_us bigint);
\copy intents FROM '$dir/intents.csv' WITH (FORMAT csv)
\copy acks FROM '$dir/acks.csv' WITH (FORMAT csv)
\i $ACKED_LIB/acked_check.sql
SQL
	) || { echo "$out"; return 1; }
	echo "$out" | grep -v '^FIGURES ' | sed 's/^/   /'
	ACKED_FIGURES=$(echo "$out" | sed -n 's/^FIGURES //p')
	local f lost doubled phantom differ written doubled_after verify acked
	for f in $ACKED_FIGURES; do
		case $f in
		lost=*) lost=${f#*=} ;; doubled=*) doubled=${f#*=} ;; phantom=*) phantom=${f#*=} ;;
		replay_differ=*) differ=${f#*=} ;; replay_written=*) written=${f#*=} ;;
		doubled_after=*) doubled_after=${f#*=} ;; verify=*) verify=${f#*=} ;; acked=*) acked=${f#*=} ;;
		esac
	done
	[ "${acked:-0}" -gt 0 ] && [ "$lost" = 0 ] && [ "$doubled" = 0 ] && [ "$phantom" = 0 ] &&
		[ "$differ" = 0 ] && [ "$written" = 0 ] && [ "$doubled_after" = 0 ] && [ "$verify" = 0 ]
}
