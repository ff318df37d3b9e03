/// A set of small, dense numbers kept as bits, for contact ids: a tenant gives its ids out in
/// order from 1, so a segment's members fill whole blocks of 4,096 ids. A block (512 bytes) is
/// made when one of its numbers first joins and kept afterwards, so the set never holds more
/// than one bit per number up to its largest member.
///
/// Against `Set<UInt64>` (about 12 bytes a member, hashed): a restore sets a million members'
/// bits in milliseconds instead of hashing each into fresh memory, and members come out in
/// ascending order without a selection pass.
struct ContactIdSet: Sendable, Equatable, Sequence {
    static let numbersPerBlock = 4_096
    private static let wordsPerBlock = numbersPerBlock / 64

    /// Where block `n` (numbers `n * 4096 ..< (n + 1) * 4096`) starts in `words`; -1 while none
    /// of its numbers is a member. One flat array of words, so a change is one write in place
    /// (an array of optional block arrays made each insert check and unwrap two arrays).
    private var blockStarts: [Int32] = []
    private var words: [UInt64] = []
    private(set) var count = 0

    init() {}

    init(_ numbers: some Sequence<UInt64>) {
        for number in numbers { insert(number) }
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always) private static func place(_ number: UInt64) -> (block: Int, word: Int, bit: UInt64) {
        let block = Int(number / UInt64(numbersPerBlock))
        let offset = Int(number % UInt64(numbersPerBlock))
        return (block, offset / 64, 1 << UInt64(offset % 64))
    }

    /// Where the word holding `block`'s word `word` lies in `words`, if the block exists.
    @inline(__always) private func position(block: Int, word: Int) -> Int? {
        guard block < blockStarts.count, blockStarts[block] >= 0 else { return nil }
        return Int(blockStarts[block]) + word
    }

    func contains(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        guard let position = position(block: block, word: word) else { return false }
        return words[position] & bit != 0
    }

    /// Makes `block` and returns where it starts.
    private mutating func makeBlock(_ block: Int) -> Int {
        if block >= blockStarts.count { blockStarts.append(contentsOf: repeatElement(-1, count: block + 1 - blockStarts.count)) }
        if blockStarts[block] < 0 {
            blockStarts[block] = Int32(words.count)
            words.append(contentsOf: repeatElement(0, count: Self.wordsPerBlock))
        }
        return Int(blockStarts[block])
    }

    /// Adds `number`; false if it was a member already.
    @discardableResult
    mutating func insert(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        let position = (self.position(block: block, word: word) ?? (makeBlock(block) + word))
        guard words[position] & bit == 0 else { return false }
        words[position] |= bit
        count += 1
        return true
    }

    /// Removes `number`; false if it was not a member.
    @discardableResult
    mutating func remove(_ number: UInt64) -> Bool {
        let (block, word, bit) = Self.place(number)
        guard let position = position(block: block, word: word), words[position] & bit != 0 else { return false }
        words[position] &= ~bit
        count -= 1
        return true
    }

    mutating func formUnion(_ other: ContactIdSet) {
        for block in other.blockStarts.indices where other.blockStarts[block] >= 0 {
            let theirs = Int(other.blockStarts[block])
            let ours = makeBlock(block)
            for word in 0..<Self.wordsPerBlock {
                count += (other.words[theirs + word] & ~words[ours + word]).nonzeroBitCount
                words[ours + word] |= other.words[theirs + word]
            }
        }
    }

    /// Up to `limit` members from `start` on, ascending.
    func ascending(from start: UInt64, limit: Int) -> [UInt64] {
        var found: [UInt64] = []
        guard limit > 0 else { return found }
        var iterator = Iterator(self, from: start)
        while found.count < limit, let number = iterator.next() { found.append(number) }
        return found
    }

    func makeIterator() -> Iterator { Iterator(self, from: 0) }

    /// Members in ascending order.
    struct Iterator: IteratorProtocol {
        private let blockStarts: [Int32]
        private let words: [UInt64]
        private var block: Int
        private var word: Int
        /// The bits of the current word not returned yet.
        private var pending: UInt64 = 0

        fileprivate init(_ set: ContactIdSet, from start: UInt64) {
            blockStarts = set.blockStarts
            words = set.words
            let (block, word, bit) = ContactIdSet.place(start)
            self.block = block
            self.word = word
            if let position = set.position(block: block, word: word) {
                // The start's word, without the bits below the start.
                pending = words[position] & ~(bit - 1)
            } else {
                // No block there: `next` goes on from the following one.
                self.word = ContactIdSet.wordsPerBlock - 1
            }
        }

        mutating func next() -> UInt64? {
            while pending == 0 {
                word += 1
                if word == ContactIdSet.wordsPerBlock {
                    word = 0
                    block += 1
                    // Whole blocks with no member are skipped at once.
                    while block < blockStarts.count && blockStarts[block] < 0 { block += 1 }
                }
                guard block < blockStarts.count else { return nil }
                pending = words[Int(blockStarts[block]) + word]
            }
            let bit = pending.trailingZeroBitCount
            pending &= pending - 1
            return UInt64(block * ContactIdSet.numbersPerBlock + word * 64 + bit)
        }
    }

    static func == (left: ContactIdSet, right: ContactIdSet) -> Bool {
        left.count == right.count && left.elementsEqual(right)
    }
}
