//! The server's black-box tests, as one test binary: each module is one area (a
//! dialect, durability, isolation, ...), and `common`, `tmf_support` and
//! `icrtouch_support` hold what they share. One binary links once, where a binary per
//! file linked the server dozens of times.

mod common;
mod icrtouch_support;
mod tmf_support;

mod auto_topup;
mod bad_input;
mod batch;
mod connections;
mod console;
mod console_browser;
mod crash;
mod export;
mod file_modes;
mod filters_sql;
mod grants;
mod icrtouch;
mod icrtouch_logs;
mod icrtouch_payments;
mod icrtouch_users;
mod icrtouch_wallets;
mod idempotency;
mod isolation;
mod isolation_matrix;
mod metadata;
mod multi_instance;
mod not_utf8;
mod pg_outage;
mod race;
mod refusals;
mod service;
mod talkdesk;
mod talkdesk_auth;
mod talkdesk_paging;
mod talkdesk_postgres;
mod tenants_auth;
mod tmf;
mod tmf_atomic;
mod tmf_hub;
mod tmf_openapi;
mod tmf_recurring;
mod topdesk;
mod topdesk_postgres;
mod topdesk_query;
mod walkthrough;
mod wallet_ceiling;
mod webhooks;
