#include "base/toml_text.hpp"

#include "base/errors.hpp"
#include "base/text.hpp"

namespace qscd::agent {

namespace {

// A lexer of TOML just deep enough to know where toml++ tests a character for whitespace: in the
// open (keys, values, between them), not inside strings and comments. It may be coarser than
// TOML (it does not check the grammar): toml++ stops at the first error it meets, so what is
// not TOML never gets further into toml++ than the point where our view and its view part.
enum class Mode { open, comment, basic, literal, multi_basic, multi_literal };

class Scanner {
 public:
  Scanner(std::string_view text, const std::string& origin) : text_(text), origin_(origin) {}

  void run() {
    if (text_.starts_with("\xEF\xBB\xBF")) step(3);  // a byte order mark, which toml++ skips
    while (at_ < text_.size()) {
      const unsigned char c = byte();
      const std::size_t length = utf8_sequence_length(text_, at_);
      if (length == 0) refuse("is not UTF-8");
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
        refuse("holds the control character " + hex(c) + " (TOML allows only tab, LF and CR)");
      }
      if (c >= 0x80) {
        if (mode_ == Mode::open) refuse("holds a non-ASCII character outside a quoted string or a comment");
        step(length);
        continue;
      }
      switch (mode_) {
        case Mode::open: open(c); break;
        case Mode::comment:
          if (c == '\n') {
            mode_ = Mode::open;
            previous_ = '\n';
            line_break();
          }
          step(1);
          break;
        case Mode::basic:
          if (c == '\\' && at_ + 1 < text_.size()) {
            step(1);
            if (byte() >= 0x80) refuse("holds a backslash before a non-ASCII character");
            if (byte() != '\n') step(1);  // an escaped quote does not end the string
          } else {
            if (c == '"' || c == '\n') mode_ = Mode::open;  // a newline: toml++ stops there
            step(1);
          }
          break;
        case Mode::literal:
          if (c == '\'' || c == '\n') mode_ = Mode::open;
          step(1);
          break;
        case Mode::multi_basic: multi_basic(c); break;
        case Mode::multi_literal:
          if (!close_multi_line('\'')) step(1);
          break;
      }
    }
  }

 private:
  unsigned char byte() const { return static_cast<unsigned char>(text_[at_]); }

  void step(std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; ++i) {
      const unsigned char b = static_cast<unsigned char>(text_[at_ + i]);
      if (b == '\n') {
        ++line_;
        column_ = 1;
      } else if ((b & 0xC0) != 0x80) {
        ++column_;  // a column per character, not per byte
      }
    }
    at_ += bytes;
  }

  // A quote opens a string only where a token starts. After the `=` of a key, toml++ reads a bare
  // value (a number, a date, `true`) on to the next whitespace, `,`, `]`, `}` or `#`, testing each
  // character, quotes and `=` included (`x =0"""é`, `t = 00:0g="é"`); a key segment ends at any
  // other character, but a quote straight after a dot is refused all the same (`a."é"`).
  static bool starts_token(unsigned char previous) {
    return previous == ' ' || previous == '\t' || previous == '\r' || previous == '\n' || previous == '=' ||
           previous == ',' || previous == '[' || previous == '{';
  }
  static bool ends_value(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ']' || c == '}' || c == '#';
  }

  void line_break() {
    if (array_depth_ == 0) value_position_ = false;  // the next line starts with a key
  }

  void open(unsigned char c) {
    const unsigned char previous = previous_;
    previous_ = c;
    if (value_position_) {
      if (in_value_ && !ends_value(c)) {
        step(1);  // still the bare value: a quote here opens nothing
        return;
      }
      in_value_ = false;
      if (c == '"' || c == '\'' || c == '#') {
        open_string_or_comment(c);
        return;
      }
      if (c == '[') ++array_depth_;
      if (c == ']' && array_depth_ > 0) --array_depth_;
      if (c == '\n') line_break();
      if (!ends_value(c) && c != '=' && c != '[' && c != '{') in_value_ = true;
      step(1);
      return;
    }
    if (c == '=') {
      value_position_ = true;
    } else if ((c == '"' || c == '\'') && starts_token(previous)) {
      open_string_or_comment(c);
      return;
    } else if (c == '#') {
      open_string_or_comment(c);
      return;
    }
    step(1);
  }

  void open_string_or_comment(unsigned char c) {
    const std::string_view rest = text_.substr(at_);
    if (c == '#') {
      mode_ = Mode::comment;
      step(1);
    } else if (rest.starts_with("\"\"\"")) {
      mode_ = Mode::multi_basic;
      step(3);
    } else if (rest.starts_with("\'\'\'")) {
      mode_ = Mode::multi_literal;
      step(3);
    } else {
      mode_ = c == '"' ? Mode::basic : Mode::literal;
      step(1);
    }
  }

  // Three to five quotes end a multi-line string (up to two of them belong to it), as in toml++.
  bool close_multi_line(char quote) {
    std::size_t quotes = 0;
    while (at_ + quotes < text_.size() && text_[at_ + quotes] == quote) ++quotes;
    if (quotes < 3) return false;
    mode_ = Mode::open;
    step(quotes);
    return true;
  }

  void multi_basic(unsigned char c) {
    if (close_multi_line('"')) return;
    step(1);
    if (c != '\\' || at_ >= text_.size()) return;
    const unsigned char next = byte();
    if (next >= 0x80) refuse("holds a backslash before a non-ASCII character");
    if (next != ' ' && next != '\t' && next != '\r' && next != '\n') {
      step(1);  // an escape such as \" or \\ .
      return;
    }
    // A line-ending backslash: toml++ skips the whitespace after it, testing each character.
    while (at_ < text_.size() && (byte() == ' ' || byte() == '\t' || byte() == '\r' || byte() == '\n')) step(1);
    if (at_ < text_.size() && byte() >= 0x80) refuse("holds a non-ASCII character first after a line-ending backslash");
  }

  static std::string hex(unsigned char c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    return std::string("U+00") + digits[c >> 4] + digits[c & 0x0F];
  }

  [[noreturn]] void refuse(const std::string& rule) const {
    throw UsageError(origin_ + ":" + std::to_string(line_) + ":" + std::to_string(column_), "the TOML text " + rule);
  }

  std::string_view text_;
  const std::string& origin_;
  Mode mode_ = Mode::open;
  unsigned char previous_ = '\n';  // the last character seen in the open, or after a string its quote
  bool value_position_ = false;  // after a key's `=`, up to the end of the line (of the array)
  bool in_value_ = false;        // inside a bare value
  int array_depth_ = 0;          // arrays opened after `=`: a line break inside one stays a value
  std::size_t at_ = 0;
  std::size_t line_ = 1;
  std::size_t column_ = 1;
};

}  // namespace

void check_toml_text(std::string_view text, const std::string& origin) { Scanner(text, origin).run(); }

}  // namespace qscd::agent
