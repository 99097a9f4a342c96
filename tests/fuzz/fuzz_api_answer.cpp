// CertCentral's answers as the client reads them (qscd/api/answers.hpp): order info, the order
// list, the order POST, organizations, downloads and bodiless answers, each with any status.
// Input: one byte choosing the reader, one byte choosing the HTTP status, then the body.
// Every answer must become one of the closed outcomes; nothing else may escape.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "qscd/api/answers.hpp"

namespace {

constexpr std::array<long, 12> statuses = {200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503, 302};

template <class T>
void describe_all(const qscd::api::Outcome<T>& outcome) {
  // Building the message a user would see reads every part of a failed outcome.
  if (!outcome.ok()) (void)outcome.describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  qscd::api::Answer answer;
  answer.status = statuses[data[1] % statuses.size()];
  answer.body.assign(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (data[0] % 6) {
    case 0: describe_all(qscd::api::read_order_info_answer(answer)); break;
    case 1: describe_all(qscd::api::read_order_list_answer(answer)); break;
    case 2: describe_all(qscd::api::read_submit_answer(answer)); break;
    case 3: describe_all(qscd::api::read_organizations_answer(answer)); break;
    case 4: describe_all(qscd::api::read_download_answer(answer)); break;
    default: describe_all(qscd::api::read_empty_answer(answer)); break;
  }
  return 0;
}
