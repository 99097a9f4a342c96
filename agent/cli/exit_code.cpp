#include "cli/exit_code.hpp"

#include "base/errors.hpp"
#include "certs/certbundle.hpp"
#include "journal/journal.hpp"
#include "qscd/api/error.hpp"
#include "qscd/pkcs11/error.hpp"

namespace qscd::agent {

// Every exception type the agent can see, mapped once.
Failure failure_for(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const UsageError& e) {
    return {ExitCode::usage, e.what()};
  } catch (const TokenError& e) {
    return {ExitCode::token, e.what()};
  } catch (const CaError& e) {
    return {ExitCode::ca, e.what()};
  } catch (const CertificateError& e) {
    return {ExitCode::ca, e.what()};  // the CA's certificate does not fit: nothing was written
  } catch (const StillWaiting& e) {
    return {ExitCode::waiting, e.what()};
  } catch (const JobBusy& e) {
    return {ExitCode::usage, e.what()};  // another process runs the job: nothing was changed
  } catch (const UnknownJob& e) {
    return {ExitCode::usage, e.what()};
  } catch (const JournalError& e) {
    return {ExitCode::failure, e.what()};
  } catch (const AgentError& e) {
    return {ExitCode::failure, e.what()};
  } catch (const qscd::p11::ModuleLoadError& e) {
    return {ExitCode::usage, e.what()};
  } catch (const qscd::p11::InvalidArgument& e) {
    return {ExitCode::usage, e.what()};
  } catch (const qscd::p11::Ambiguous& e) {
    return {ExitCode::usage, e.what()};  // the user must name one of the listed
  } catch (const qscd::p11::NotFound& e) {
    return {ExitCode::token, e.what()};  // absent token or key
  } catch (const qscd::p11::PinError& e) {
    return {ExitCode::token, e.what()};  // wrong, locked, final try, to be changed
  } catch (const qscd::p11::Error& e) {
    return {ExitCode::token, e.what()};
  } catch (const qscd::api::ConfigError& e) {
    return {ExitCode::usage, e.what()};
  } catch (const qscd::api::ValidationError& e) {
    return {ExitCode::usage, e.what()};
  } catch (const qscd::api::CallFailed& e) {
    // Its message starts with "API key rejected" when the key was not accepted.
    if (e.kind() == qscd::api::OutcomeKind::pending) return {ExitCode::waiting, e.what()};
    return {ExitCode::ca, e.what()};
  } catch (const std::exception& e) {
    return {ExitCode::failure, std::string("unexpected failure: ") + e.what()};
  } catch (...) {
    return {ExitCode::failure, "unexpected failure"};
  }
}


ExitCode exit_code_for(CommandStatus status) {
  switch (status) {
    case CommandStatus::done:
      return ExitCode::ok;
    case CommandStatus::findings:
      return ExitCode::usage;
    case CommandStatus::waiting_on_ca:
    case CommandStatus::stopped:
      return ExitCode::waiting;
    case CommandStatus::waiting_on_person:
      return ExitCode::token;
    case CommandStatus::failed_at_ca:
      return ExitCode::ca;
  }
  return ExitCode::failure;
}


}  // namespace qscd::agent
