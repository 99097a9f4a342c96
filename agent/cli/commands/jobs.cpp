// `jobs [ID]`, `jobs show ID`: the journal, for people and for --json.
#include <memory>

#include "cli/job_report.hpp"
#include "journal/journal.hpp"
#include "cli/registry.hpp"

namespace qscd::agent::cmd {

void add_jobs(CLI::App& app, Context& context) {
  auto id = std::make_shared<std::int64_t>(0);
  auto show_id = std::make_shared<std::int64_t>(0);
  CLI::App* cmd = app.add_subcommand("jobs", "the journal: each job, its state, its order, its last error");
  auto* id_option = cmd->add_option("ID", *id, "one job: its fields and its steps");
  CLI::App* show = cmd->add_subcommand("show", "a job's evidence record (token, key, hashes, order, chain, steps)");
  show->add_option("ID", *show_id, "the job")->required();
  cmd->require_subcommand(0, 1);
  cmd->callback([&context, id, show_id, id_option, show] {
    Journal journal = Journal::open(context.state_dir());
    CommandResult result;
    if (show->parsed()) {
      Job job = journal.get(*show_id);
      auto events = journal.events(job.id);
      result.json = job_evidence_json(job, events);
      result.text = job_evidence_text(job, events);
    } else if (id_option->count() > 0) {
      Job job = journal.get(*id);
      auto events = journal.events(job.id);
      result.json = job_summary_json(job);
      result.json["steps"] = job_evidence_json(job, events)["steps"];
      result.text = jobs_table_text({job});
      for (const auto& event : events) {
        result.text += "  " + event.at + "  " + std::string(to_string(event.state)) +
                       (event.detail.empty() ? "" : "  " + event.detail) + "\n";
      }
    } else {
      auto jobs = journal.list();
      // Only the form that is printed: a journal of thousands of jobs made both costly (docs/performance.md).
      if (context.options.json) {
        result.json = {{"jobs", nlohmann::json::array()}};
        for (const auto& job : jobs) result.json["jobs"].push_back(job_summary_json(job));
      } else {
        result.text = jobs_table_text(jobs);
      }
    }
    context.set_result(std::move(result));
  });
}

}  // namespace qscd::agent::cmd
