#include "cli/job_report.hpp"

#include <algorithm>

#include "base/stop.hpp"

namespace qscd::agent {

namespace {

nlohmann::json optional_id(const std::optional<std::int64_t>& id) {
  return id ? nlohmann::json(*id) : nlohmann::json(nullptr);
}

std::string id_text(const std::optional<std::int64_t>& id) { return id ? std::to_string(*id) : "-"; }

std::string pad(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

}  // namespace

std::string state_text(JobState state) {
  if (state == JobState::monitoring) return "done (monitoring for renewal)";
  return std::string(to_string(state));
}

nlohmann::json job_summary_json(const Job& job) {
  nlohmann::json doc = {{"id", job.id},
                        {"token_serial", job.key.token_serial},
                        {"key_label", job.key.key_label},
                        {"profile", job.key.profile},
                        {"product", job.key.product},
                        {"state", std::string(to_string(job.state))},
                        {"order_id", optional_id(job.order_id)},
                        {"last_error", job.last_error},
                        {"created_at", job.created_at},
                        {"updated_at", job.updated_at}};
  if (job.waiting_from) doc["waiting_from"] = std::string(to_string(*job.waiting_from));
  if (job.claimed_by) doc["claimed_by_pid"] = *job.claimed_by;
  return doc;
}

nlohmann::json job_evidence_json(const Job& job, const std::vector<JobEvent>& events) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& event : events) {
    steps.push_back({{"state", std::string(to_string(event.state))}, {"at", event.at}, {"detail", event.detail}});
  }
  return {{"job_id", job.id},
          {"job_tag", job.job_tag},
          {"state", std::string(to_string(job.state))},
          {"last_error", job.last_error},
          {"operator", job.operator_name},
          {"token", {{"serial", job.key.token_serial}, {"model", job.token_model}, {"manufacturer", job.token_manufacturer}}},
          {"key", {{"id", job.key_id_hex}, {"label", job.key.key_label}}},
          {"profile", job.key.profile},
          {"product", job.key.product},
          {"subject", job.subject},
          {"order_id", optional_id(job.order_id)},
          {"request_id", optional_id(job.request_id)},
          {"certificate_id", optional_id(job.certificate_id)},
          {"certificate_serial", job.cert_serial},
          {"sha256", {{"spki", job.spki_sha256}, {"csr", job.csr_sha256}, {"certificate", job.cert_sha256}}},
          {"csr_pem", job.csr_pem},
          {"chain_pem", job.chain_pem},
          {"created_at", job.created_at},
          {"updated_at", job.updated_at},
          {"steps", steps}};
}

std::string jobs_table_text(const std::vector<Job>& jobs) {
  if (jobs.empty()) return "no jobs\n";
  std::size_t state_width = 5;
  for (const auto& job : jobs) state_width = std::max(state_width, state_text(job.state).size());
  std::string text = pad("ID", 6) + pad("STATE", state_width + 2) + pad("ORDER", 12) + "JOB KEY / LAST ERROR\n";
  for (const auto& job : jobs) {
    text += pad(std::to_string(job.id), 6) + pad(state_text(job.state), state_width + 2) +
            pad(id_text(job.order_id), 12) + job.key.display() + "\n";
    if (!job.last_error.empty()) text += pad("", 6 + state_width + 2 + 12) + "last error: " + job.last_error + "\n";
  }
  return text;
}

std::string job_evidence_text(const Job& job, const std::vector<JobEvent>& events) {
  std::string text;
  auto line = [&text](const std::string& name, const std::string& value) {
    text += pad(name + ":", 20) + (value.empty() ? "-" : value) + "\n";
  };
  line("job", std::to_string(job.id) + " (" + job.job_tag + ")");
  line("state", state_text(job.state));
  if (!job.last_error.empty()) line("last error", job.last_error);
  line("operator", job.operator_name);
  line("token", job.key.token_serial + " (" + job.token_manufacturer + ", " + job.token_model + ")");
  line("key", "CKA_ID " + job.key_id_hex + ", label " + job.key.key_label);
  line("profile / product", job.key.profile + " / " + job.key.product);
  line("subject", job.subject);
  line("order", id_text(job.order_id));
  line("certificate", id_text(job.certificate_id) + (job.cert_serial.empty() ? "" : ", serial " + job.cert_serial));
  line("SHA-256 SPKI", job.spki_sha256);
  line("SHA-256 CSR", job.csr_sha256);
  line("SHA-256 cert", job.cert_sha256);
  text += "steps:\n";
  for (const auto& event : events) {
    text += "  " + event.at + "  " + pad(std::string(to_string(event.state)), 20) + event.detail + "\n";
  }
  if (!job.chain_pem.empty()) text += "chain:\n" + job.chain_pem;
  return text;
}

std::string run_stop_text(RunStop stop, const Job& job, std::string_view after_failure) {
  switch (stop) {
    case RunStop::waiting_on_ca:
      if (job.state == JobState::need_to_submit) {
        return "  CertCentral did not take the request (" + job.last_error +
               "); nothing was ordered; the job is saved: run the same command again\n";
      }
      return "  waiting for CertCentral; run the same command again to continue\n";
    case RunStop::failed:
      return "  failed: " + job.last_error + std::string(after_failure) + "\n";
    case RunStop::waiting_on_person:
      return "  waiting: " + job.last_error + "\n";
    case RunStop::stopped:
      return "  stopped by " + stop_signal_name() + " in " + std::string(to_string(job.state)) +
             "; the job is saved: run the same command again to continue\n";
    case RunStop::finished:
      break;
  }
  return {};
}

CommandStatus command_status(RunStop stop, const Job& job) {
  switch (stop) {
    case RunStop::finished:
      return CommandStatus::done;
    case RunStop::waiting_on_ca:
      return job.state == JobState::need_to_submit ? CommandStatus::failed_at_ca : CommandStatus::waiting_on_ca;
    case RunStop::waiting_on_person:
      return CommandStatus::waiting_on_person;
    case RunStop::stopped:
      return CommandStatus::stopped;
    case RunStop::failed:
      return CommandStatus::failed_at_ca;
  }
  return CommandStatus::failed_at_ca;
}

namespace {

int severity(CommandStatus status) {
  switch (status) {
    case CommandStatus::done:
      return 0;
    case CommandStatus::waiting_on_ca:
    case CommandStatus::stopped:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

CommandStatus worse(CommandStatus so_far, CommandStatus status) {
  return severity(status) > severity(so_far) ? status : so_far;
}

}  // namespace qscd::agent
