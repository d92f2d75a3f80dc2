//! ssmc
