#include "base/secret.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <utility>

#include "base/errors.hpp"
#include "base/stop.hpp"

namespace qscd::agent {

void push_secret_byte(api::SecretBytes& secret, unsigned char byte) {
  if (!secret.push_back(byte)) {
    throw UsageError("secret", "longer than " + std::to_string(secret.capacity()) + " bytes");
  }
}

namespace {

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  [[nodiscard]] int get() const { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Reads up to the first newline or EOF; the newline (and a CR before it) is dropped.
api::SecretBytes read_line(int fd, std::string_view what, std::string_view origin) {
  api::SecretBytes secret;
  unsigned char byte = 0;
  for (;;) {
    if (!wait_readable_unless_stopped(fd)) throw Stopped(std::string("while reading the ") + std::string(what));
    ssize_t n = ::read(fd, &byte, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      throw UsageError(std::string(origin), std::string("cannot read the ") + std::string(what) + ": " + std::strerror(errno));
    }
    if (n == 0 || byte == '\n') break;
    if (!secret.push_back(byte)) {
      OPENSSL_cleanse(&byte, sizeof byte);
      throw UsageError(std::string(origin), "the " + std::string(what) + " is longer than " + std::to_string(secret.capacity()) +
                                                " bytes (one line is read)");
    }
  }
  OPENSSL_cleanse(&byte, sizeof byte);
  if (!secret.empty() && secret.bytes().back() == '\r') secret.pop_back();
  return secret;
}

api::SecretBytes from_file(const std::string& path, std::string_view what, std::string_view option) {
  // O_NONBLOCK: a FIFO must not hold the open until a writer comes; it is refused just below.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0 && errno == ELOOP) {
    throw UsageError(std::string(option), path + " is a symbolic link; name the file itself (a link can be pointed elsewhere)");
  }
  if (fd.get() < 0) {
    throw UsageError(std::string(option), "cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw UsageError(std::string(option), path + " is not a regular file");
  }
  if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    auto res = std::to_chars(mode, mode + sizeof mode, st.st_mode & 0777, 8);
    throw UsageError(std::string(option), "the " + std::string(what) + " file " + path + " has mode 0" +
                                              std::string(mode, res.ptr) +
                                              "; it must not be readable or writable by group or others (chmod 600)");
  }
  return read_line(fd.get(), what, option);
}

api::SecretBytes from_fd(std::string_view number, std::string_view what, std::string_view option) {
  int fd = -1;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), fd);
  if (ec != std::errc() || ptr != number.data() + number.size() || fd < 0) {
    throw UsageError(std::string(option), "fd:N needs a file descriptor number, got 'fd:" + std::string(number) + "'");
  }
  if (::fcntl(fd, F_GETFD) < 0) {
    throw UsageError(std::string(option), "file descriptor " + std::string(number) + " is not open");
  }
  return read_line(fd, what, option);
}

api::SecretBytes from_env(const std::string& name, std::string_view what, std::string_view option) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    throw UsageError(std::string(option), "environment variable " + name + " is not set (it should hold the " + std::string(what) + ")");
  }
  api::SecretBytes secret;
  for (const char* p = value; *p != '\0'; ++p) {
    if (!secret.push_back(static_cast<unsigned char>(*p))) {
      throw UsageError(std::string(option), "the " + std::string(what) + " in " + name + " is longer than " +
                                                std::to_string(secret.capacity()) + " bytes");
    }
  }
  // Child processes (pinentry, anything the agent starts later) must not inherit it.
  ::unsetenv(name.c_str());
  return secret;
}

api::SecretBytes from_prompt(std::string_view what, std::string_view option) {
  Fd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (tty.get() < 0) {
    throw UsageError(std::string(option), "no terminal to prompt for the " + std::string(what) +
                                              "; give fd:N, file:PATH, env:NAME or pinentry");
  }
  struct termios saved {};
  bool restore = ::tcgetattr(tty.get(), &saved) == 0;
  if (restore) {
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(tty.get(), TCSAFLUSH, &quiet);
  }
  std::string prompt = "Enter the " + std::string(what) + ": ";
  (void)!::write(tty.get(), prompt.data(), prompt.size());
  try {
    api::SecretBytes secret = read_line(tty.get(), what, option);
    if (restore) ::tcsetattr(tty.get(), TCSAFLUSH, &saved);
    return secret;
  } catch (...) {
    if (restore) ::tcsetattr(tty.get(), TCSAFLUSH, &saved);
    throw;
  }
}

// A pinentry child and our ends of its stdin/stdout. Destroying it closes our
// ends (pinentry exits on EOF) and then reaps the child, also when reading its
// reply threw.
class PinentryProcess {
 public:
  PinentryProcess(const char* program, std::string_view option) {
    int to_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0) fail(option);
    Fd child_stdin(to_child[0]);
    to_child_ = Fd(to_child[1]);
    int from_child[2];
    if (::pipe2(from_child, O_CLOEXEC) != 0) fail(option);
    from_child_ = Fd(from_child[0]);
    Fd child_stdout(from_child[1]);
    pid_ = ::fork();
    if (pid_ < 0) fail(option);
    if (pid_ == 0) {
      ::signal(SIGPIPE, SIG_DFL);  // the agent ignores it; pinentry gets the default back
      ::dup2(child_stdin.get(), 0);
      ::dup2(child_stdout.get(), 1);
      ::execlp(program, program, static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~PinentryProcess() { wait(); }
  PinentryProcess(const PinentryProcess&) = delete;
  PinentryProcess& operator=(const PinentryProcess&) = delete;

  [[nodiscard]] int input() const { return from_child_.get(); }

  // False when pinentry is gone (EPIPE: SIGPIPE is ignored by the agent).
  bool send(const std::string& command) const {
    std::size_t done = 0;
    while (done < command.size()) {
      ssize_t n = ::write(to_child_.get(), command.data() + done, command.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Closes our ends and reaps the child; true when it could not be run at all (exit 127).
  bool wait() {
    to_child_.reset();
    from_child_.reset();
    if (pid_ <= 0) return false;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 127;
  }

 private:
  [[noreturn]] static void fail(std::string_view option) {
    throw UsageError(std::string(option), "cannot start pinentry: " + std::string(std::strerror(errno)));
  }

  Fd to_child_{-1};
  Fd from_child_{-1};
  pid_t pid_ = -1;
};

std::string trim_spaces(std::string text) {
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
  return text;
}

// The OPTION lines gpg-agent sends: ttyname (GPG_TTY, else the terminal on stdin or stderr),
// ttytype (TERM), lc-ctype and display when set.
std::vector<std::string> pinentry_options() {
  std::vector<std::string> options;
  std::string tty;
  if (const char* gpg_tty = std::getenv("GPG_TTY"); gpg_tty != nullptr && *gpg_tty != '\0') {
    tty = gpg_tty;
  } else {
    for (int fd : {STDIN_FILENO, STDERR_FILENO, STDOUT_FILENO}) {
      if (const char* name = ::isatty(fd) == 1 ? ::ttyname(fd) : nullptr; name != nullptr) {
        tty = name;
        break;
      }
    }
  }
  if (!tty.empty()) options.push_back("ttyname=" + tty);
  if (const char* term = std::getenv("TERM"); term != nullptr && *term != '\0') options.push_back(std::string("ttytype=") + term);
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      options.push_back(std::string("lc-ctype=") + value);
      break;
    }
  }
  if (const char* display = std::getenv("DISPLAY"); display != nullptr && *display != '\0') {
    options.push_back(std::string("display=") + display);
  }
  return options;
}

// pinentry speaks the Assuan protocol on its stdin/stdout: we send SETDESC and
// GETPIN and read "D <percent-escaped pin>" back.
api::SecretBytes from_pinentry(std::string_view what, std::string_view option) {
  const char* program = std::getenv("PINENTRY_PROGRAM");
  if (program == nullptr) program = "pinentry";
  PinentryProcess pinentry(program, option);

  std::string last_error;  // pinentry's ERR line: "83886179 Operation cancelled <Pinentry>"
  auto read_reply = [&](api::SecretBytes* data) -> bool {
    // Reads lines until OK or ERR; collects a D line into *data.
    for (;;) {
      api::SecretBytes line = read_line(pinentry.input(), what, option);
      std::string_view text = line.view();
      if (text.starts_with("OK")) return true;
      if (text.starts_with("ERR")) {
        last_error = std::string(text.substr(3));
        return false;
      }
      if (text.empty() && line.size() == 0) {
        last_error = "it closed the connection";
        return false;
      }
      if (text.starts_with("D ") && data != nullptr) {
        for (std::size_t i = 2; i < text.size(); ++i) {
          if (text[i] == '%' && i + 2 < text.size()) {
            unsigned value = 0;
            std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
            push_secret_byte(*data, static_cast<unsigned char>(value));
            i += 2;
          } else {
            push_secret_byte(*data, static_cast<unsigned char>(text[i]));
          }
        }
      }
    }
  };

  api::SecretBytes secret;
  bool ok = read_reply(nullptr);
  // What gpg-agent tells pinentry before it asks: where to draw (a curses pinentry draws nothing
  // without the terminal's name and type) and the charset. A pinentry that does not know an
  // option answers ERR to it and still asks; so does this agent.
  for (const std::string& option_line : pinentry_options()) {
    ok = ok && pinentry.send("OPTION " + option_line + "\n");
    if (ok) (void)read_reply(nullptr);
    last_error.clear();
  }
  ok = ok && pinentry.send("SETDESC qscd-agent needs the " + std::string(what) + "\n") && read_reply(nullptr);
  ok = ok && pinentry.send("SETPROMPT " + std::string(what) + ":\n") && read_reply(nullptr);
  ok = ok && pinentry.send("GETPIN\n") && read_reply(&secret);
  if (ok) (void)pinentry.send("BYE\n");
  const bool not_run = pinentry.wait();
  if (not_run) {
    throw UsageError(std::string(option), "cannot run the pinentry program '" + std::string(program) +
                                              "' (set PINENTRY_PROGRAM or install pinentry)");
  }
  if (!ok) {
    throw UsageError(std::string(option), "pinentry did not return the " + std::string(what) +
                                              (last_error.empty() ? std::string() : ": it answered \"" + trim_spaces(last_error) + "\""));
  }
  return secret;
}

}  // namespace

api::SecretBytes read_secret(std::string_view spec, std::string_view what, std::string_view option) {
  api::SecretBytes secret;
  if (spec == "prompt") {
    secret = from_prompt(what, option);
  } else if (spec == "pinentry") {
    secret = from_pinentry(what, option);
  } else if (spec.starts_with("fd:")) {
    secret = from_fd(spec.substr(3), what, option);
  } else if (spec.starts_with("file:")) {
    secret = from_file(std::string(spec.substr(5)), what, option);
  } else if (spec.starts_with("env:")) {
    secret = from_env(std::string(spec.substr(4)), what, option);
  } else {
    throw UsageError(std::string(option), "unknown secret source '" + std::string(spec) +
                                              "'; use prompt, pinentry, fd:N, file:PATH or env:NAME");
  }
  if (secret.empty()) throw UsageError(std::string(option), "the " + std::string(what) + " is empty");
  return secret;
}

std::string default_secret_spec(std::string_view option) {
  if (::isatty(STDIN_FILENO) != 0) return "prompt";
  throw UsageError(std::string(option), "required when not on a terminal (prompt, pinentry, fd:N, file:PATH or env:NAME)");
}

}  // namespace qscd::agent
