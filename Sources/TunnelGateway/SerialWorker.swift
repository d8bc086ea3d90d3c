// A named thread that runs submitted work one item at a time, in order.
import Foundation

final class SerialWorker: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [() -> Void] = []
    private var busy = false
    private var thread: Thread?
    private let name: String

    init(name: String) { self.name = name }

    /// Runs `work` after everything submitted before it (the thread starts at the first item).
    func submit(_ work: @escaping () -> Void) {
        condition.lock()
        items.append(work)
        if thread == nil {
            let t = Thread { [weak self] in self?.loop() }
            t.name = name
            thread = t
            t.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Waits until everything submitted so far has run.
    func drain() {
        condition.lock()
        while !items.isEmpty || busy { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while items.isEmpty { condition.wait() }
            let work = items.removeFirst()
            busy = true
            condition.unlock()
            work()
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
