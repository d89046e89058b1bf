// geo_cluster_node: one node of one region's Raft group (canonical raft 0.15 on libuv), holding
// one geo::ActiveActiveReplicator as its state machine. Every node serves the line protocol of
// README.md: clients write and read, leaders of other regions ship batches. Everything runs on
// the libuv loop thread, so nothing here takes a lock.
//
//   geo_cluster_node --cluster FILE --id N --data DIR [--clock-offset-ms MS]
//                    [--durable-timeout-ms MS] [--ship-interval-ms MS]
//                    [--snapshot-threshold N] [--noop | --no-ship]

#include "cluster_config.hpp"
#include "entry_codec.hpp"
#include "line_conn.hpp"
#include "raft_c.hpp"

#include <geo/geo.hpp>
#include <geo/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace {

using cluster::ClusterConfig;
using cluster::LineConn;
using cluster::NodeInfo;

struct Options {
    std::string cluster_file;
    std::string data_dir;
    std::uint64_t id = 0;
    std::int64_t clock_offset_ms = 0;        ///< added to this process's wall clock (skew fault)
    std::uint64_t durable_timeout_ms = 5000; ///< how long a write waits for remote acks
    /// How long writes gather into one batch while no client waits for them: every batch is a
    /// log entry in the target region and an acknowledgement in ours, so batching is what keeps
    /// shipping cheap under load.
    std::uint64_t ship_interval_ms = 100;
    unsigned snapshot_threshold = 256; ///< log entries between two snapshots
    bool noop = false;                 ///< the state machine ignores commands (C1's baseline)
    bool no_ship = false; ///< never ship to other regions (C1's geo-noship: geo's apply path alone)
};

constexpr std::size_t kBatchLimit = 256; ///< most writes in one shipped batch

std::uint64_t wall_ms() {
    return geo::current_timestamp_ms();
}

/// stderr with the wall-clock time in front, so the nodes' logs line up with the run's faults.
std::ostream& note() {
    const std::uint64_t ms = wall_ms();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03u ", utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<unsigned>(ms % 1000));
    return std::cerr << stamp;
}

/// Splits `text` at spaces into at most `max_parts` parts; the last part keeps the rest.
std::vector<std::string_view> split(std::string_view text, std::size_t max_parts) {
    std::vector<std::string_view> parts;
    while (!text.empty() && parts.size() + 1 < max_parts) {
        const auto space = text.find(' ');
        if (space == std::string_view::npos) {
            break;
        }
        parts.push_back(text.substr(0, space));
        text.remove_prefix(space + 1);
    }
    if (!text.empty()) {
        parts.push_back(text);
    }
    return parts;
}

std::uint64_t to_u64(std::string_view text) {
    std::uint64_t value = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            throw std::invalid_argument("not a number: " + std::string(text));
        }
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

/// Replies are one line: a message that may carry newlines (an exception text) is flattened.
std::string one_line(std::string text) {
    for (auto& c : text) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    return text;
}

/// What applying one entry produced, for the node that proposed it (others ignore it).
struct ApplyResult {
    enum class Kind { Write, Batch, Other, Noop, Error };
    raft_index index{};
    Kind kind{Kind::Other};
    geo::GeoWriteOutcome outcome;
    std::uint64_t applied_seq{}; ///< batch: the highest seq applied from its origin
    bool out_of_order{};
    std::string error;
};

using Reply = std::function<void(const std::string&)>;

/// A client request: leading "@f" (already forwarded to this region's leader) and "@r" (already
/// routed by another region) flags, then the command words.
struct Request {
    bool forwarded = false;
    bool routed = false;
    std::string body; ///< the line without flags
    std::vector<std::string_view> words;
};

class Node {
public:
    Node(uv_loop_t* loop, Options options) : loop_(loop), opt_(std::move(options)) {}

    bool start();

private:
    // ---- state machine (raft_fsm callbacks) ---------------------------------------------------
    struct Proposal {
        struct raft_apply req; ///< req.data points back to the proposal
        std::function<void(int, const ApplyResult*)> done;
    };

    static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
        static_cast<Node*>(fsm->data)->apply(*buf, result);
        return 0; // every outcome is deterministic: a non-zero return would stall the node
    }

    static int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
        try {
            std::ostringstream out;
            auto* node = static_cast<Node*>(fsm->data);
            if (node->opt_.noop) {
                out << "noop-fsm"; // raft 0.15 fails to store an empty snapshot, and retries
            } else {
                node->rep_->snapshot(out);
            }
            const std::string bytes = out.str();
            auto* array = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
            if (array == nullptr) {
                return RAFT_NOMEM;
            }
            array[0].len = bytes.size();
            array[0].base = raft_malloc(bytes.size());
            if (array[0].base == nullptr) {
                raft_free(array);
                return RAFT_NOMEM;
            }
            std::memcpy(array[0].base, bytes.data(), bytes.size());
            *bufs = array; // raft frees both (a version 1 FSM hands ownership over)
            *n_bufs = 1;
            return 0;
        } catch (const std::exception& e) {
            note() << "snapshot failed: " << e.what() << '\n';
            return RAFT_IOERR;
        }
    }

    static int fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
        auto* node = static_cast<Node*>(fsm->data);
        const std::string bytes(static_cast<const char*>(buf->base), buf->len);
        raft_free(buf->base); // restore owns the buffer
        if (node->opt_.noop) {
            return 0;
        }
        try {
            std::istringstream in(bytes);
            node->rep_->restore(in);
            return 0;
        } catch (const std::exception& e) {
            note() << "restore failed: " << e.what() << '\n';
            return RAFT_CORRUPT;
        }
    }

    void apply(const raft_buffer& buf, void** result);
    void apply_command(std::string_view text);

    static void on_applied(struct raft_apply* req, int status, void* result) {
        auto* proposal = static_cast<Proposal*>(req->data);
        const auto* r = static_cast<const ApplyResult*>(result);
        if (status == 0 && (r == nullptr || r->index != req->index)) {
            // raft 0.15 calls back right after applying the entry; anything else is a bug here.
            note() << "apply result of entry " << req->index << " missing\n";
            r = nullptr;
        }
        proposal->done(status, r);
        delete proposal;
    }

    /// Proposes `command`; 0 or a raft error code (then `done` never runs).
    int propose(const std::string& command, std::function<void(int, const ApplyResult*)> done);

    // ---- requests ---------------------------------------------------------------------------
    void on_line(LineConn& conn, std::string&& line);
    void handle(Request req, const Reply& reply, int attempt = 0);
    void write(const Request& req, const Reply& reply, int attempt);
    void receive_batch(const Request& req, const Reply& reply);
    void forward(const std::string& address, const std::string& line, const Reply& reply);
    void forward_to_leader(const Request& req, const Reply& reply);
    void forward_to_region(const std::string& region, Request req, const Reply& reply, int attempt);
    [[nodiscard]] std::string status_line(bool with_digest);
    [[nodiscard]] std::string record_line(std::string_view key) const;

    // ---- durability -------------------------------------------------------------------------
    // wait_durable blocks, and the loop thread must not: waiter threads block in it (woken by
    // the acknowledgements the loop applies) and hand results back with uv_async_send.
    struct Waiter {
        std::string key;
        std::uint64_t seq;
        std::uint64_t ts;
        geo::ConsistencyLevel level;
        std::uint64_t deadline_ms;
        Reply reply; ///< called on the loop thread only
        bool durable = false;
    };
    void wait_durable(Waiter w);
    void waiter_thread();
    static void on_durable_done(uv_async_t* async) {
        static_cast<Node*>(async->data)->durable_done();
    }
    void durable_done();

    // ---- shipping to other regions -----------------------------------------------------------
    struct Shipper {
        std::string target;
        std::shared_ptr<LineConn> link;
        std::size_t node_index = 0;  ///< which of the target's nodes to connect to next
        std::size_t failures = 0;    ///< connections in a row that got no answer
        bool answered = false;       ///< this link got at least one answer
        std::uint64_t sent_upto = 0; ///< after_seq for the next peek
        std::size_t window = 1;      ///< batches in flight allowed (1 after a reset)
        std::map<std::uint64_t, std::uint64_t> in_flight; ///< tag -> time sent
        std::uint64_t next_tag = 1;
        std::size_t unsent = 0;       ///< local writes since the last peek (at least those queued)
        std::uint64_t ack_wanted = 0; ///< highest seq the target said it applied
        std::uint64_t ack_sent = 0;   ///< highest acknowledgement committed by this leader
        std::uint64_t retry_at_ms = 0;
        std::uint64_t last_batch_ms = 0;
    };
    void pump(Shipper& s);
    void pump_all();
    void shipper_reply(Shipper& s, const std::string& line);
    void reset_stream(Shipper& s, std::uint64_t delay_ms);
    void propose_acks();

    // ---- periodic work ----------------------------------------------------------------------
    static void on_tick(uv_timer_t* timer) { static_cast<Node*>(timer->data)->tick(); }
    void tick();
    [[nodiscard]] bool is_leader() { return raft_state(&raft_) == RAFT_LEADER; }
    [[nodiscard]] std::uint64_t now_ms() const {
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(wall_ms()) +
                                          opt_.clock_offset_ms);
    }

    uv_loop_t* loop_;
    Options opt_;
    ClusterConfig cfg_;
    const NodeInfo* self_ = nullptr;
    std::string local_;
    std::unique_ptr<geo::ActiveActiveReplicator> rep_;

    raft_uv_transport transport_{};
    raft_io io_{};
    raft_fsm fsm_{};
    struct raft raft_ {};
    uv_tcp_t server_{};
    uv_timer_t timer_{};

    ApplyResult last_; ///< the outcome of the entry being applied, read by on_applied
    bool was_leader_ = false;
    std::map<std::string, Shipper> shippers_;
    bool acks_in_flight_ = false;     ///< one acknowledgement entry at a time, for every stream
    std::size_t durable_waiters_ = 0; ///< writes whose clients wait for remote acknowledgements
    uv_async_t durable_async_{};
    std::mutex waiters_mutex_; ///< guards the two queues below, shared with the waiter threads
    std::condition_variable waiters_cv_;
    std::deque<Waiter> waiting_;
    std::deque<Waiter> waited_;
    std::map<std::string, std::size_t> region_cursor_; ///< next node tried in a routed forward
    std::uint64_t next_purge_ms_ = 0;
};

// ---- start ------------------------------------------------------------------------------------

bool Node::start() {
    cfg_ = ClusterConfig::load(opt_.cluster_file);
    self_ = cfg_.node(opt_.id);
    if (self_ == nullptr) {
        std::cerr << "node " << opt_.id << " is not in " << opt_.cluster_file << '\n';
        return false;
    }
    local_ = self_->region;
    const std::int64_t offset = opt_.clock_offset_ms;
    rep_ = std::make_unique<geo::ActiveActiveReplicator>(
        cfg_.geo_config(local_), cfg_.groups(), [offset] {
            return static_cast<std::uint64_t>(static_cast<std::int64_t>(wall_ms()) + offset);
        });
    for (const auto& region : cfg_.regions) {
        if (region != local_) {
            shippers_[region].target = region;
        }
    }

    durable_async_.data = this;
    uv_async_init(loop_, &durable_async_, &Node::on_durable_done);
    for (int i = 0; i < 16; ++i) {
        // Detached: the process ends by signal; a waiter never outlives its timeout.
        std::thread(&Node::waiter_thread, this).detach();
    }

    std::filesystem::create_directories(opt_.data_dir);
    int rv = raft_uv_tcp_init(&transport_, loop_);
    if (rv == 0) {
        rv = raft_uv_init(&io_, loop_, opt_.data_dir.c_str(), &transport_);
    }
    if (rv != 0) {
        std::cerr << "raft_uv_init: " << raft_strerror(rv) << ' ' << io_.errmsg << '\n';
        return false;
    }
    fsm_.version = 1;
    fsm_.data = this;
    fsm_.apply = &Node::fsm_apply;
    fsm_.snapshot = &Node::fsm_snapshot;
    fsm_.restore = &Node::fsm_restore;
    rv = raft_init(&raft_, &io_, &fsm_, self_->id, self_->raft_address.c_str());
    if (rv != 0) {
        std::cerr << "raft_init: " << raft_errmsg(&raft_) << '\n';
        return false;
    }
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const auto* member : cfg_.members(local_)) {
        raft_configuration_add(&conf, member->id, member->raft_address.c_str(), RAFT_VOTER);
    }
    rv = raft_bootstrap(&raft_, &conf); // only a pristine data directory accepts it
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        std::cerr << "raft_bootstrap: " << raft_errmsg(&raft_) << '\n';
        return false;
    }
    // By default small snapshots often, so short runs exercise snapshot, restore and
    // install-snapshot too; C1 uses raft's own default threshold.
    raft_set_snapshot_threshold(&raft_, opt_.snapshot_threshold);
    raft_set_snapshot_trailing(&raft_, opt_.snapshot_threshold / 2);
    rv = raft_start(&raft_);
    if (rv != 0) {
        std::cerr << "raft_start: " << raft_errmsg(&raft_) << '\n';
        return false;
    }

    sockaddr_in addr{};
    uv_tcp_init(loop_, &server_);
    server_.data = this;
    if (!cluster::parse_ipv4(self_->client_address, addr) ||
        uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&addr), 0) != 0 ||
        uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 128,
                  [](uv_stream_t* server, int status) {
                      if (status != 0) {
                          return;
                      }
                      auto* node = static_cast<Node*>(server->data);
                      auto conn = LineConn::make(node->loop_);
                      conn->on_line = [node](LineConn& c, std::string&& line) {
                          node->on_line(c, std::move(line));
                      };
                      conn->accept_from(server);
                  }) != 0) {
        std::cerr << "cannot listen on " << self_->client_address << '\n';
        return false;
    }
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    uv_timer_start(&timer_, &Node::on_tick, 50, 50);
    next_purge_ms_ = wall_ms() + 10000;
    note() << "node " << self_->id << " of " << local_ << " ready: raft " << self_->raft_address
           << ", clients " << self_->client_address << std::endl;
    return true;
}

// ---- state machine ----------------------------------------------------------------------------

void Node::apply(const raft_buffer& buf, void** result) {
    last_ = ApplyResult{};
    last_.index = raft_last_applied(&raft_) + 1; // raft moves last_applied after the callback
    *result = &last_;
    const auto text = cluster::decode_entry(buf.base, buf.len);
    if (!text) {
        last_.kind = ApplyResult::Kind::Error;
        last_.error = "malformed log entry";
        return;
    }
    if (opt_.noop) {
        last_.kind = ApplyResult::Kind::Noop;
        return;
    }
    try {
        apply_command(*text);
    } catch (const std::exception& e) {
        // geo refuses bad input before changing anything, the same way on every node.
        last_.kind = ApplyResult::Kind::Error;
        last_.error = one_line(e.what());
    }
}

// Log commands, one line of text each:
//   P <ts> <key> <value>   a local write stamped by the proposer
//   D <ts> <key>           a local delete
//   B <origin> <json>      a batch received from region <origin>
//   A <target> <seq> ...   each <target> applied our stream up to its <seq>
//   G <now_ms>             purge tombstones at that time
void Node::apply_command(std::string_view text) {
    const auto words = split(text, 3);
    if (words.empty()) {
        throw std::invalid_argument("empty command");
    }
    const char op = words[0].size() == 1 ? words[0][0] : '?';
    if ((op == 'P' || op == 'D') && words.size() == 3) {
        last_.kind = ApplyResult::Kind::Write;
        const std::uint64_t ts = to_u64(words[1]);
        if (op == 'D') {
            last_.outcome = rep_->erase(words[2], ts);
        } else {
            const auto kv = split(words[2], 2);
            if (kv.size() != 2) {
                throw std::invalid_argument("P needs a key and a value");
            }
            last_.outcome = rep_->put(kv[0], kv[1], ts);
        }
    } else if (op == 'B' && words.size() == 3) {
        last_.kind = ApplyResult::Kind::Batch;
        const std::string origin(words[1]);
        const auto batch = geo::from_json_text<std::vector<geo::FanoutEntry>>(words[2]);
        for (const auto& outcome : rep_->apply_remote(origin, batch)) {
            last_.out_of_order |= std::holds_alternative<geo::OutOfOrder>(outcome);
        }
        last_.applied_seq = rep_->region_sequences().at(origin);
    } else if (op == 'A' && words.size() == 3) {
        const auto pairs = split(text.substr(2), std::string_view::npos);
        if (pairs.size() % 2 != 0) {
            throw std::invalid_argument("A needs <target> <seq> pairs");
        }
        for (std::size_t i = 0; i < pairs.size(); i += 2) {
            rep_->acknowledge_fanout(local_, pairs[i], to_u64(pairs[i + 1])); // wakes wait_durable
        }
    } else if (op == 'G' && words.size() == 2) {
        rep_->purge_tombstones(to_u64(words[1]));
    } else {
        throw std::invalid_argument("unknown command " + std::string(text.substr(0, 40)));
    }
}

int Node::propose(const std::string& command, std::function<void(int, const ApplyResult*)> done) {
    if (!is_leader()) {
        return RAFT_NOTLEADER;
    }
    const std::size_t size = cluster::entry_size(command.size());
    void* base = raft_malloc(size); // raft frees what it accepts
    if (base == nullptr) {
        return RAFT_NOMEM;
    }
    cluster::encode_entry(command, static_cast<unsigned char*>(base));
    raft_buffer buf;
    buf.base = base;
    buf.len = size;
    auto* proposal = new Proposal{};
    proposal->req.data = proposal;
    proposal->done = std::move(done);
    const int rv = raft_apply(&raft_, &proposal->req, &buf, 1, &Node::on_applied);
    if (rv != 0) {
        raft_free(base);
        delete proposal;
    }
    return rv;
}

// ---- requests ---------------------------------------------------------------------------------

void Node::on_line(LineConn& conn, std::string&& line) {
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    Request req;
    std::string_view rest(line);
    for (;;) {
        if (rest.rfind("@f ", 0) == 0) {
            req.forwarded = true;
        } else if (rest.rfind("@r ", 0) == 0) {
            req.routed = true;
        } else {
            break;
        }
        rest.remove_prefix(3);
    }
    req.body = std::string(rest);
    std::weak_ptr<LineConn> weak = conn.shared_from_this();
    handle(std::move(req), [weak](const std::string& answer) {
        if (auto c = weak.lock()) {
            c->send(one_line(answer));
        }
    });
}

void Node::handle(Request req, const Reply& reply, int attempt) {
    req.words = split(req.body, req.body.rfind("BATCH ", 0) == 0 ? 4 : 3);
    const std::string_view cmd = req.words.empty() ? std::string_view() : req.words[0];
    try {
        if (cmd == "PUT" && req.words.size() == 3 && split(req.words[2], 2).size() == 1) {
            write(req, reply, attempt);
        } else if (cmd == "DEL" && req.words.size() == 2) {
            write(req, reply, attempt);
        } else if (cmd == "GET" && req.words.size() == 2) {
            reply(record_line(req.words[1]));
        } else if (cmd == "STATUS" && req.words.size() == 1) {
            reply(status_line(true));
        } else if (cmd == "STATUS" && req.words.size() == 2 && req.words[1] == "streams") {
            reply(status_line(false)); // for samplers: the digest reads every record
        } else if (cmd == "BATCH" && req.words.size() == 4) {
            receive_batch(req, reply);
        } else {
            reply("ERR usage: PUT <key> <value> | DEL <key> | GET <key> | STATUS [streams]");
        }
    } catch (const std::exception& e) {
        reply(std::string("ERR ") + e.what());
    }
}

void Node::write(const Request& req, const Reply& reply, int attempt) {
    if (!is_leader()) {
        forward_to_leader(req, reply);
        return;
    }
    const std::string key(req.words[1]);
    const auto decision = rep_->route(key);
    if (!req.routed && decision.primary_region != local_) {
        forward_to_region(decision.primary_region, req, reply, attempt);
        return;
    }
    const geo::ConsistencyLevel level = decision.consistency;
    const std::uint64_t ts = rep_->proposal_timestamp(); // the leader stamps; every node applies it
    const std::string command = req.words[0] == "DEL" ? "D " + std::to_string(ts) + " " + key
                                                      : "P " + std::to_string(ts) + " " + key +
                                                            " " + std::string(req.words[2]);
    const int rv =
        propose(command, [this, reply, key, level, ts](int status, const ApplyResult* r) {
            if (status != 0) {
                // Appended but not known to be committed (leadership lost): it may still commit.
                reply(std::string("UNKNOWN ") + raft_strerror(status));
            } else if (r == nullptr) {
                reply("UNKNOWN no apply result");
            } else if (r->kind == ApplyResult::Kind::Noop) {
                reply("OK " + local_ + " 0 " + std::to_string(ts));
            } else if (r->kind == ApplyResult::Kind::Error) {
                reply("ERR " + r->error);
            } else if (const auto* c = std::get_if<geo::Committed>(&r->outcome)) {
                if (geo::min_remote_acks(level, cfg_.regions.size() - 1) == 0) {
                    reply("OK " + local_ + " " + std::to_string(c->seq) + " " + std::to_string(ts));
                } else {
                    ++durable_waiters_; // batches leave without gathering while a client waits
                    wait_durable(
                        Waiter{key, c->seq, ts, level, wall_ms() + opt_.durable_timeout_ms, reply});
                }
                for (auto& [region, s] : shippers_) {
                    ++s.unsent;
                }
                pump_all();
            } else if (const auto* lost = std::get_if<geo::RejectedByConflict>(&r->outcome)) {
                reply("REJECTED " + lost->winner_region + " " +
                      std::to_string(lost->winner_timestamp_ms));
            } else {
                reply("ERR unexpected outcome");
            }
        });
    if (rv != 0) {
        reply(std::string("ERR ") + raft_strerror(rv)); // not proposed: nothing happened
    }
}

void Node::receive_batch(const Request& req, const Reply& reply) {
    if (!is_leader()) {
        forward_to_leader(req, reply);
        return;
    }
    const std::string origin(req.words[1]);
    const std::string tag(req.words[2]);
    if (origin == local_ || !rep_->config().has_region(origin)) {
        reply("ERR " + tag + " unknown origin " + origin);
        return;
    }
    const int rv = propose("B " + origin + " " + std::string(req.words[3]),
                           [reply, tag](int status, const ApplyResult* r) {
                               if (status != 0 || r == nullptr) {
                                   reply("ERR " + tag + " " +
                                         (status != 0 ? raft_strerror(status) : "no result"));
                               } else if (r->kind == ApplyResult::Kind::Error) {
                                   reply("ERR " + tag + " " + r->error);
                               } else {
                                   reply((r->out_of_order ? "OUTOFORDER " : "APPLIED ") + tag +
                                         " " + std::to_string(r->applied_seq));
                               }
                           });
    if (rv != 0) {
        reply("ERR " + tag + " " + raft_strerror(rv));
    }
}

/// Sends one line to `address` on a fresh connection and relays the first answer. No answer:
/// "UNREACHABLE" when the connection never opened (the request was not delivered), else
/// "UNKNOWN" (it may have been carried out).
void Node::forward(const std::string& address, const std::string& line, const Reply& reply) {
    auto conn = LineConn::make(loop_);
    auto answered = std::make_shared<bool>(false);
    auto sent = std::make_shared<bool>(false);
    conn->on_line = [reply, answered](LineConn& c, std::string&& answer) {
        if (!*answered) {
            *answered = true;
            reply(answer);
        }
        c.close();
    };
    conn->on_close = [reply, answered, sent](LineConn&) {
        if (!*answered) {
            *answered = true;
            reply(*sent ? "UNKNOWN connection lost" : "UNREACHABLE");
        }
    };
    conn->connect(address, [line, sent](LineConn& c) {
        *sent = true;
        c.send(line);
    });
    // A forward that hangs (a partition that drops packets) is cut by the same deadline as a
    // durable wait plus a margin.
    auto timer = new uv_timer_t;
    uv_timer_init(loop_, timer);
    timer->data = new std::weak_ptr<LineConn>(conn);
    uv_timer_start(
        timer,
        [](uv_timer_t* t) {
            auto* weak = static_cast<std::weak_ptr<LineConn>*>(t->data);
            if (auto c = weak->lock()) {
                c->close();
            }
            delete weak;
            uv_close(reinterpret_cast<uv_handle_t*>(t),
                     [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        },
        opt_.durable_timeout_ms + 3000, 0);
}

void Node::forward_to_leader(const Request& req, const Reply& reply) {
    if (req.forwarded) {
        reply("ERR notleader"); // at most one hop inside a region
        return;
    }
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(&raft_, &leader, &address);
    const NodeInfo* node = leader == 0 ? nullptr : cfg_.node(leader);
    if (node == nullptr || leader == self_->id) {
        reply("ERR noleader");
        return;
    }
    forward(node->client_address, std::string("@f ") + (req.routed ? "@r " : "") + req.body,
            [reply](const std::string& answer) {
                reply(answer == "UNREACHABLE" ? "ERR leader unreachable" : answer);
            });
}

void Node::forward_to_region(const std::string& region, Request req, const Reply& reply,
                             int attempt) {
    const auto members = cfg_.members(region);
    std::size_t& cursor = region_cursor_[region];
    const NodeInfo* target = members[cursor++ % members.size()];
    forward(cfg_.address_from(local_, *target), "@r " + req.body,
            [this, region, req, reply, attempt, n = members.size()](const std::string& answer) {
                if (answer != "UNREACHABLE") {
                    reply(answer);
                } else if (static_cast<std::size_t>(attempt) + 1 < n) {
                    handle(req, reply, attempt + 1); // the next node of that region
                } else {
                    // No node of the region answers: route around it (failover), once.
                    rep_->set_region_available(region, false);
                    if (attempt < 8) {
                        handle(req, reply, attempt + 1);
                    } else {
                        reply("ERR region " + region + " unreachable");
                    }
                }
            });
}

std::string Node::record_line(std::string_view key) const {
    const auto record = rep_->get_record(key);
    if (!record) {
        return "NONE";
    }
    return "REC " + record->region + " " + std::to_string(record->seq) + " " +
           std::to_string(record->timestamp_ms) + " " + (record->deleted ? "1" : "0") + " " +
           record->value;
}

std::string Node::status_line(bool with_digest) {
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(&raft_, &leader, &address);
    const int state = raft_state(&raft_);
    const char* role = state == RAFT_LEADER      ? "leader"
                       : state == RAFT_FOLLOWER  ? "follower"
                       : state == RAFT_CANDIDATE ? "candidate"
                                                 : "unavailable";
    std::string records;
    if (with_digest) {
        char digest[32];
        std::snprintf(digest, sizeof digest, "%016llx",
                      static_cast<unsigned long long>(rep_->records_digest()));
        records = " records=" + std::to_string(rep_->record_count()) + " digest=" + digest;
    }
    std::string owed, avail, lag;
    for (const auto& region : cfg_.regions) {
        if (region == local_) {
            continue;
        }
        const auto stream = rep_->stream_status(local_, region);
        const char* comma = owed.empty() ? "" : ",";
        owed += comma + region + ":" + std::to_string(stream.owed);
        lag += comma + region + ":" + std::to_string(stream.lag.count());
        avail += comma + region + ":" + (rep_->region_available(region) ? "1" : "0");
    }
    return "STATUS id=" + std::to_string(self_->id) + " region=" + local_ + " role=" + role +
           " leader=" + std::to_string(leader) +
           " applied=" + std::to_string(raft_last_applied(&raft_)) + records + " owed=" + owed +
           " lag=" + lag + " available=" + avail;
}

// ---- durability -------------------------------------------------------------------------------

void Node::wait_durable(Waiter w) {
    {
        std::lock_guard<std::mutex> lock(waiters_mutex_);
        waiting_.push_back(std::move(w));
    }
    waiters_cv_.notify_one();
}

void Node::waiter_thread() {
    for (;;) {
        std::unique_lock<std::mutex> lock(waiters_mutex_);
        waiters_cv_.wait(lock, [this] { return !waiting_.empty(); });
        Waiter w = std::move(waiting_.front());
        waiting_.pop_front();
        lock.unlock();
        const std::uint64_t now = wall_ms();
        const auto left = std::chrono::milliseconds(w.deadline_ms > now ? w.deadline_ms - now : 0);
        w.durable = rep_->wait_durable(local_, w.key, w.seq, w.level, left);
        lock.lock();
        waited_.push_back(std::move(w));
        lock.unlock();
        uv_async_send(&durable_async_); // the one libuv call that is safe off the loop thread
    }
}

void Node::durable_done() {
    std::deque<Waiter> done;
    {
        std::lock_guard<std::mutex> lock(waiters_mutex_);
        done.swap(waited_);
    }
    durable_waiters_ -= done.size();
    for (auto& w : done) {
        // A timeout is answered as such, never as success: the write stays committed here and
        // keeps shipping, but the level's remote acknowledgements did not come in time.
        w.reply(std::string(w.durable ? "OK " : "TIMEOUT ") + local_ + " " + std::to_string(w.seq) +
                " " + std::to_string(w.ts));
    }
}

// ---- shipping ---------------------------------------------------------------------------------

void Node::reset_stream(Shipper& s, std::uint64_t delay_ms) {
    s.sent_upto = 0; // peek again from the acknowledged cursor
    s.window = 1;
    s.in_flight.clear();
    s.retry_at_ms = wall_ms() + delay_ms;
}

// One log entry acknowledges every stream, and one is in flight at a time: answers that arrive
// meanwhile fold into the next. Batches already gather for the ship interval, so this is a few
// entries a second; holding acknowledgements back as well measured no faster in C1 and doubled
// the lag (which lasts until the acknowledgement is applied).
void Node::propose_acks() {
    if (acks_in_flight_ || !is_leader()) {
        return;
    }
    std::string command = "A";
    std::vector<std::pair<std::string, std::uint64_t>> acks;
    for (auto& [region, s] : shippers_) {
        if (s.ack_wanted > s.ack_sent) {
            command += " " + region + " " + std::to_string(s.ack_wanted);
            acks.emplace_back(region, s.ack_wanted);
        }
    }
    if (acks.empty()) {
        return;
    }
    acks_in_flight_ = true;
    const int rv = propose(command, [this, acks](int status, const ApplyResult*) {
        acks_in_flight_ = false;
        if (status == 0) {
            for (const auto& [target, seq] : acks) {
                Shipper& sh = shippers_[target];
                sh.ack_sent = std::max(sh.ack_sent, seq);
            }
        }
        propose_acks();
    });
    if (rv != 0) {
        acks_in_flight_ = false; // retried on the next answer or tick
    }
}

void Node::shipper_reply(Shipper& s, const std::string& line) {
    s.answered = true;
    s.failures = 0;
    rep_->set_region_available(s.target, true);
    const auto words = split(line, 3);
    if (words.size() == 3 && (words[0] == "APPLIED" || words[0] == "OUTOFORDER")) {
        const std::uint64_t tag = to_u64(words[1]);
        const std::uint64_t seq = to_u64(words[2]);
        s.in_flight.erase(tag);
        s.ack_wanted = std::max(s.ack_wanted, seq); // the target holds our stream up to seq
        propose_acks();
        if (words[0] == "APPLIED") {
            s.window = 2; // pipelined; writes meanwhile gather into the next batch
        } else {
            reset_stream(s, 0);
        }
    } else {
        reset_stream(s, 200); // ERR: no leader there yet, or a failed proposal
    }
    pump(s);
}

void Node::pump(Shipper& s) {
    if (opt_.no_ship || !is_leader() || wall_ms() < s.retry_at_ms) {
        return;
    }
    if (!s.link) {
        const auto members = cfg_.members(s.target);
        const NodeInfo* node = members[s.node_index++ % members.size()];
        s.link = LineConn::make(loop_);
        s.answered = false;
        const std::string target = s.target;
        s.link->on_line = [this, target](LineConn&, std::string&& line) {
            try {
                shipper_reply(shippers_[target], line);
            } catch (const std::exception& e) {
                note() << "bad answer from " << target << ": " << e.what() << '\n';
            }
        };
        auto link = s.link;
        s.link->on_close = [this, target, link](LineConn&) {
            Shipper& sh = shippers_[target];
            if (sh.link == link) {
                sh.link.reset();
            }
            if (!link->is_connected()) {
                // Marked down once every node of the region failed in a row: routing then
                // fails writes over to another region.
                if (!sh.answered && ++sh.failures >= cfg_.members(target).size()) {
                    rep_->set_region_available(target, false);
                }
            }
            reset_stream(sh, 300);
        };
        s.link->connect(cfg_.address_from(local_, *node),
                        [this, target](LineConn&) { pump(shippers_[target]); });
        return;
    }
    if (!s.link->is_connected()) {
        return;
    }
    // A batch leaves when the window has room and a client waits for it, a full batch is
    // ready, or the ship interval has passed: under load writes gather into few log entries.
    while (s.in_flight.size() < s.window &&
           (durable_waiters_ > 0 || wall_ms() >= s.last_batch_ms + opt_.ship_interval_ms ||
            s.unsent >= kBatchLimit)) {
        const auto batch = rep_->peek_fanout(local_, s.target, kBatchLimit, s.sent_upto);
        if (batch.empty()) {
            s.unsent = 0;
            break;
        }
        const std::uint64_t tag = s.next_tag++;
        s.link->send("BATCH " + local_ + " " + std::to_string(tag) + " " +
                     geo::to_json_text(batch));
        s.in_flight[tag] = wall_ms();
        s.unsent = batch.size() < kBatchLimit ? 0 : s.unsent - std::min(s.unsent, batch.size());
        s.last_batch_ms = wall_ms();
        s.sent_upto = batch.back().seq;
    }
}

void Node::pump_all() {
    propose_acks();
    for (auto& [region, s] : shippers_) {
        pump(s);
    }
}

// ---- periodic work ----------------------------------------------------------------------------

void Node::tick() {
    const bool leader = is_leader();
    if (leader != was_leader_) {
        note() << "node " << self_->id << (leader ? " became leader\n" : " is no longer leader\n");
        for (auto& [region, s] : shippers_) {
            // A new leader starts from the replicated cursors; an old one stops shipping.
            if (s.link) {
                s.link->close();
            }
            reset_stream(s, 0);
            s.ack_wanted = 0;
            s.ack_sent = 0;
        }
        acks_in_flight_ = false;
        was_leader_ = leader;
    }
    const std::uint64_t now = wall_ms();
    for (auto& [region, s] : shippers_) {
        // An answer that never comes (a partition that swallows packets): reconnect.
        if (s.link && !s.in_flight.empty() && now > s.in_flight.begin()->second + 5000) {
            s.link->close();
        }
    }
    if (leader && now >= next_purge_ms_) {
        next_purge_ms_ = now + 10000;
        // The purge and its time go through the log, so every node purges the same tombstones.
        (void)propose("G " + std::to_string(now_ms()), [](int, const ApplyResult*) {});
    }
    pump_all();
}

bool parse_options(int argc, char** argv, Options& opt) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                throw std::invalid_argument(arg + " needs a value");
            }
            return argv[++i];
        };
        if (arg == "--cluster") {
            opt.cluster_file = value();
        } else if (arg == "--id") {
            opt.id = std::stoull(value());
        } else if (arg == "--data") {
            opt.data_dir = value();
        } else if (arg == "--clock-offset-ms") {
            opt.clock_offset_ms = std::stoll(value());
        } else if (arg == "--durable-timeout-ms") {
            opt.durable_timeout_ms = std::stoull(value());
        } else if (arg == "--ship-interval-ms") {
            opt.ship_interval_ms = std::stoull(value());
        } else if (arg == "--snapshot-threshold") {
            opt.snapshot_threshold = static_cast<unsigned>(std::stoul(value()));
        } else if (arg == "--noop") {
            opt.noop = true;
        } else if (arg == "--no-ship") {
            opt.no_ship = true;
        } else {
            throw std::invalid_argument("unknown option " + arg);
        }
    }
    return !opt.cluster_file.empty() && opt.id != 0 && !opt.data_dir.empty();
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN); // a peer that goes away must not kill the node
    Options opt;
    try {
        if (!parse_options(argc, argv, opt)) {
            std::cerr << "usage: geo_cluster_node --cluster FILE --id N --data DIR"
                         " [--clock-offset-ms MS] [--durable-timeout-ms MS]"
                         " [--ship-interval-ms MS] [--snapshot-threshold N] [--noop | --no-ship]\n";
            return 2;
        }
        uv_loop_t* loop = uv_default_loop();
        Node node(loop, opt);
        if (!node.start()) {
            return 1;
        }
        return uv_run(loop, UV_RUN_DEFAULT);
    } catch (const std::exception& e) {
        std::cerr << "geo_cluster_node: " << e.what() << '\n';
        return 1;
    }
}
