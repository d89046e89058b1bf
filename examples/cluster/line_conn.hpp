// A TCP connection on the libuv loop that sends and receives '\n'-terminated lines.
#pragma once

#include "raft_c.hpp"

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace cluster {

/// Parses an IPv4 "host:port"; false when it is not one.
inline bool parse_ipv4(const std::string& address, sockaddr_in& out) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        return false;
    }
    const std::string host = address.substr(0, colon);
    const int port = std::atoi(address.c_str() + colon + 1);
    return port > 0 && port < 65536 && uv_ip4_addr(host.c_str(), port, &out) == 0;
}

/// Lives until libuv has closed its handle, whoever holds it: the loop keeps it alive through
/// `self_`, so callbacks never see a freed connection. Loop thread only.
class LineConn : public std::enable_shared_from_this<LineConn> {
public:
    using LineFn = std::function<void(LineConn&, std::string&&)>;
    using EventFn = std::function<void(LineConn&)>;

    /// Lines longer than this close the connection (a peer gone mad must not exhaust memory).
    static constexpr std::size_t max_line = std::size_t{64} << 20;

    LineFn on_line;
    EventFn on_close; ///< exactly once, after the handle is closed (connect failures included)

    static std::shared_ptr<LineConn> make(uv_loop_t* loop) {
        std::shared_ptr<LineConn> conn(new LineConn);
        uv_tcp_init(loop, &conn->tcp_);
        conn->tcp_.data = conn.get();
        conn->self_ = conn;
        return conn;
    }

    /// Accepts a pending connection of `server`; closes itself if that fails.
    void accept_from(uv_stream_t* server) {
        if (uv_accept(server, stream()) != 0) {
            close();
            return;
        }
        start();
    }

    /// Connects to `address`; `on_connected` runs on success, on_close on failure.
    void connect(const std::string& address, EventFn on_connected) {
        sockaddr_in addr{};
        on_connected_ = std::move(on_connected);
        connect_req_.data = this;
        if (!parse_ipv4(address, addr) ||
            uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&addr),
                           &LineConn::connected) != 0) {
            close();
        }
    }

    void send(std::string_view line) {
        if (closing_) {
            return;
        }
        auto* w = new Write;
        w->data.reserve(line.size() + 1);
        w->data.append(line);
        w->data.push_back('\n');
        w->req.data = w;
        uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
        if (uv_write(&w->req, stream(), &buf, 1, &LineConn::written) != 0) {
            delete w;
            close();
        }
    }

    void close() {
        if (closing_) {
            return;
        }
        closing_ = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &LineConn::closed);
    }

    [[nodiscard]] bool is_open() const { return !closing_; }
    [[nodiscard]] bool is_connected() const { return connected_ && !closing_; }

private:
    struct Write {
        uv_write_t req;
        std::string data;
    };

    LineConn() = default;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    void start() {
        connected_ = true;
        uv_tcp_nodelay(&tcp_, 1);
        if (uv_read_start(stream(), &LineConn::alloc, &LineConn::read) != 0) {
            close();
        }
    }

    static void connected(uv_connect_t* req, int status) {
        auto* conn = static_cast<LineConn*>(req->data);
        if (status != 0 || conn->closing_) {
            conn->close();
            return;
        }
        conn->start();
        if (conn->on_connected_ && !conn->closing_) {
            conn->on_connected_(*conn);
        }
    }

    static void alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        auto* conn = static_cast<LineConn*>(handle->data);
        *buf = uv_buf_init(conn->chunk_, sizeof conn->chunk_);
    }

    static void read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<LineConn*>(s->data);
        if (n < 0) {
            conn->close();
            return;
        }
        conn->input_.append(buf->base, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (;;) {
            const auto end = conn->input_.find('\n', start);
            if (end == std::string::npos || conn->closing_) {
                break;
            }
            std::string line = conn->input_.substr(start, end - start);
            start = end + 1;
            if (conn->on_line) {
                conn->on_line(*conn, std::move(line));
            }
        }
        conn->input_.erase(0, start);
        if (conn->input_.size() > max_line) {
            conn->close();
        }
    }

    static void written(uv_write_t* req, int) { delete static_cast<Write*>(req->data); }

    static void closed(uv_handle_t* handle) {
        auto* conn = static_cast<LineConn*>(handle->data);
        const std::shared_ptr<LineConn> keep = std::move(conn->self_); // freed after on_close
        if (conn->on_close) {
            conn->on_close(*conn);
        }
        // Callbacks may capture what refers back to this connection: drop them now.
        conn->on_close = nullptr;
        conn->on_line = nullptr;
        conn->on_connected_ = nullptr;
    }

    uv_tcp_t tcp_{};
    uv_connect_t connect_req_{};
    std::shared_ptr<LineConn> self_;
    EventFn on_connected_;
    std::string input_;
    bool closing_ = false;
    bool connected_ = false;
    char chunk_[65536];
};

} // namespace cluster
